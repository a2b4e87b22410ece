"""The layer rules of ARCHITECTURE.md, read from the import statements of every module under ``runner/``.

Every import counts: at module top, inside a function (a lazy import is still a dependency) and under
``if TYPE_CHECKING:`` (except the type-only edges listed in ``TYPE_ONLY_EDGES``, each with its reason).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import runner

PACKAGE_DIR = Path(runner.__file__).parent
VOCABULARY = frozenset({"runner.errors", "runner.model", "runner.spec", "runner.jsontext", "runner.pricing"})
# Libraries that do I/O or schedule tasks: the pure layers (vocabulary, wire, grading, job) know none of them.
IO_LIBRARIES = frozenset(
    {"trio", "httpx", "httpcore", "h11", "sqlalchemy", "alembic", "jinja2", "asyncio", "anyio"}
)
# (importer, I/O library) pairs allowed in a pure layer, each with its reason.
PURE_LIBRARY_EDGES = frozenset(
    {
        # A templated case's strings are rendered at load (issue 14) in Jinja2's sandbox, from strings
        # only: the environment has no loader, so no template can read a file. Only this module does it.
        ("runner.job.template", "jinja2"),
    }
)
# (importer, imported) pairs allowed under ``if TYPE_CHECKING:`` only.
TYPE_ONLY_EDGES = frozenset(
    {
        # ProviderSpec.simulator is a SimulatorConfig: the annotation names the simulator's pure config type,
        # which the job layer parses at load. At run time the vocabulary still imports nothing of runner.
        ("runner.spec", "runner.simulator.config"),
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    """One import statement: who imports what, where, and whether only for type checking."""

    source: str
    target: str
    line: int
    type_only: bool

    def __str__(self) -> str:
        path = self.source.replace(".", "/")
        return f"{path}.py:{self.line} imports {self.target}{' (type only)' if self.type_only else ''}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(source: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against ``source``)."""
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[source].name == "__init__.py"
    base = source.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(source: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    module = _resolve(source, node)
    # ``from runner.store import repository`` imports the submodule when there is one.
    return [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]


def _edges_of(source: str, path: Path) -> list[Edge]:
    edges: list[Edge] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.body:
                visit(statement, True)
            for statement in node.orelse:
                visit(statement, type_only)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            edges.extend(
                Edge(source=source, target=t, line=node.lineno, type_only=type_only)
                for t in _targets(source, node)
            )
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return edges


EDGES = [edge for name, path in MODULES.items() for edge in _edges_of(name, path)]


def _in(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _internal(edge: Edge) -> bool:
    return _in(edge.target, "runner") and (edge.source, edge.target) not in (
        TYPE_ONLY_EDGES if edge.type_only else frozenset()
    )


def _violations(sources: tuple[str, ...], allowed: tuple[str, ...], *, io: bool = False) -> list[str]:
    """Imports in ``sources`` of runner modules outside ``allowed`` (and of I/O libraries if ``io``)."""
    found = []
    for edge in EDGES:
        if not (_in(edge.source, *sources) or edge.source in sources):
            continue
        if _internal(edge) and not (_in(edge.target, *allowed) or edge.target in VOCABULARY):
            found.append(str(edge))
        library = edge.target.split(".")[0]
        if io and library in IO_LIBRARIES and (edge.source, library) not in PURE_LIBRARY_EDGES:
            found.append(str(edge))
    return found


def test_vocabulary_imports_nothing_else_of_runner() -> None:
    """errors, model, spec, jsontext and pricing import only each other (and no I/O library)."""
    assert _violations(tuple(VOCABULARY), (), io=True) == []


def test_wire_is_pure_and_sits_on_the_vocabulary() -> None:
    """``wire`` imports only the vocabulary and itself; no trio, httpx or SQLAlchemy."""
    assert _violations(("runner.wire",), ("runner.wire",), io=True) == []


def test_grading_is_pure_and_sits_on_the_vocabulary() -> None:
    """``grading`` imports only the vocabulary and itself; no trio, httpx or SQLAlchemy."""
    assert _violations(("runner.grading",), ("runner.grading",), io=True) == []


def test_job_is_pure_and_sits_on_wire_and_grading() -> None:
    """``job`` imports the vocabulary, ``wire``, ``grading``, the simulator's pure config, and itself."""
    allowed = ("runner.job", "runner.wire", "runner.grading", "runner.simulator.config")
    assert _violations(("runner.job",), allowed, io=True) == []


def test_http_sits_on_its_own_with_a_pure_core() -> None:
    """``http`` imports nothing of runner but itself; ``parse`` and ``decode`` no I/O library; ``pool`` trio
    only (no httpx, httpcore, h11); ``transport`` trio and httpx only."""
    found = _violations(("runner.http",), ("runner.http",))
    found += _violations(("runner.http.parse", "runner.http.decode"), ("runner.http",), io=True)
    for source, allowed in (("runner.http.pool", {"trio"}), ("runner.http.transport", {"trio", "httpx"})):
        found += [
            str(e) for e in EDGES if e.source == source and e.target.split(".")[0] in IO_LIBRARIES - allowed
        ]
    assert found == []


def test_only_run_and_bench_use_http() -> None:
    """runner's transport sits under ``run`` (and ``bench``, which measures it): nothing else imports it."""
    found = [
        str(e)
        for e in EDGES
        if _in(e.target, "runner.http") and not _in(e.source, "runner.http", "runner.run", "runner.bench")
    ]
    assert found == []


def test_store_knows_no_run_report_or_wire() -> None:
    """``store`` never imports ``run``, ``report`` or ``wire``."""
    forbidden = ("runner.run", "runner.report", "runner.wire")
    found = [str(e) for e in EDGES if _in(e.source, "runner.store") and _in(e.target, *forbidden)]
    assert found == []


# The run service, the one part of ``run`` that wires the store in: run/service.py and the modules split
# out of it (opening a run, reading how it stands, the process around it).
RUN_SERVICE = ("runner.run.service", "runner.run.planning", "runner.run.summary", "runner.run.process")


def test_only_the_run_service_wires_the_store_in() -> None:
    """In ``run`` only the service's modules (``RUN_SERVICE``) import the repository, the database or
    SQLAlchemy."""
    found = [
        str(e)
        for e in EDGES
        if _in(e.source, "runner.run")
        and e.source not in RUN_SERVICE
        and (
            (_in(e.target, "runner.store") and e.target != "runner.store.records")
            or e.target.split(".")[0] in {"sqlalchemy", "alembic"}
        )
    ]
    assert found == []


def test_run_and_report_are_independent() -> None:
    """``run`` and ``report`` never import each other: reports read only the database."""
    found = [
        str(e)
        for e in EDGES
        if (_in(e.source, "runner.run") and _in(e.target, "runner.report"))
        or (_in(e.source, "runner.report") and _in(e.target, "runner.run"))
    ]
    assert found == []


def test_view_sits_on_report_and_store_and_only_cli_imports_it() -> None:
    """``view`` (the local viewer) reads through ``report`` and ``store``, never ``run``, ``http`` or
    ``wire``; nothing but ``cli`` imports it."""
    found = [
        str(e)
        for e in EDGES
        if (_in(e.source, "runner.view") and _in(e.target, "runner.run", "runner.http", "runner.wire"))
        or (_in(e.target, "runner.view") and not _in(e.source, "runner.view", "runner.cli"))
    ]
    assert found == []


def test_simulator_is_an_independent_oracle() -> None:
    """``simulator`` imports nothing of runner but ``errors`` and itself."""
    found = [
        str(e)
        for e in EDGES
        if _in(e.source, "runner.simulator")
        and _internal(e)
        and not _in(e.target, "runner.simulator", "runner.errors")
    ]
    assert found == []


def test_nothing_imports_cli_or_bench() -> None:
    """``cli`` and ``bench`` sit on top: only they, ``python -m runner`` and ``runner bench`` import them."""
    found = [
        str(e)
        for e in EDGES
        if (_in(e.target, "runner.cli") and not _in(e.source, "runner.cli") and e.source != "runner.__main__")
        or (_in(e.target, "runner.bench") and not _in(e.source, "runner.bench", "runner.cli"))
    ]
    assert found == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in ``graph``, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycles() -> None:
    """No cycle runs through the run-time imports of runner's modules (type-only imports aside)."""
    graph: dict[str, set[str]] = {}
    for edge in EDGES:
        if not edge.type_only and edge.target in MODULES and edge.target != edge.source:
            graph.setdefault(edge.source, set()).add(edge.target)
    assert _cycle(graph) is None


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        pytest.param({"a": {"b"}, "b": {"c"}}, None, id="chain"),
        pytest.param({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"], id="pair"),
        pytest.param({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"], id="tail"),
    ],
)
def test_cycle_finder_finds_cycles(graph: dict[str, set[str]], expected: list[str] | None) -> None:
    """The cycle check itself sees a cycle when there is one, so an empty answer means something."""
    assert _cycle(graph) == expected


def test_edges_are_read_from_every_kind_of_import() -> None:
    """Top-level, lazy and TYPE_CHECKING imports are all seen, so the rules above cannot pass by blindness."""
    engine = [e for e in EDGES if e.source == "runner.run.service"]
    assert any(e.target.startswith("runner.store") for e in engine)
    assert any(e.type_only for e in EDGES)
    cli_run = [e for e in EDGES if e.source == "runner.cli.run"]
    assert any(e.target == "runner.run.service" for e in cli_run)  # imported inside the command body
