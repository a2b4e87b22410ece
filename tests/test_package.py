"""The package surface: ``runner.__all__`` is sorted, complete and resolvable; modules have docstrings."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

import runner

PACKAGE_DIR = Path(runner.__file__).parent


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 ("isort-style"): CONSTANTS, then Classes, then everything else, each by name.
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted() -> None:
    """``__all__`` is in isort-style order, so a diff that adds a name shows exactly where."""
    assert runner.__all__ == sorted(runner.__all__, key=_isort_key)


def test_all_has_no_duplicates() -> None:
    """Each public name is listed once."""
    assert len(runner.__all__) == len(set(runner.__all__))


def test_all_is_complete() -> None:
    """Every public name ``runner/__init__.py`` imports is listed in ``__all__``, and nothing else."""
    public = {
        name
        for name, value in vars(runner).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)  # submodules bound as attributes on import
        and name != "annotations"  # from __future__ import annotations
    }
    assert public == set(runner.__all__) - {"__version__"}


@pytest.mark.parametrize("name", runner.__all__)
def test_every_name_resolves(name: str) -> None:
    """``from runner import NAME`` works for every listed name."""
    assert getattr(runner, name) is not None


def test_init_only_reexports() -> None:
    """``runner/__init__.py`` holds imports, ``__version__`` and ``__all__`` only: no logic."""
    tree = ast.parse((PACKAGE_DIR / "__init__.py").read_text(encoding="utf-8"))
    body = tree.body[1:] if ast.get_docstring(tree) else tree.body
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        assert isinstance(node, ast.Assign), ast.dump(node)
        targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        assert targets in (["__version__"], ["__all__"])


def _modules() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


@pytest.mark.parametrize("path", [pytest.param(p, id=str(p.relative_to(PACKAGE_DIR))) for p in _modules()])
def test_module_opens_with_docstring(path: Path) -> None:
    """Every module under ``runner/`` opens with a docstring whose first line says its role."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring, f"{path} has no module docstring"
    assert docstring.splitlines()[0].strip(), f"{path}: the docstring's first line is empty"
