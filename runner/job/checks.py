"""Custom checks of a job (``[cases.expect] python = "module:function"``): import each function from a
Python file beside the job file, at load, so a missing module or function fails before anything is sent.

The one place runner executes a job's own code: a job file that names Python runs that Python (with
the user's rights, in runner's process). Modules load by file path, under a private name that leaves
``sys.modules`` again once the module has run, and ``sys.path`` is never touched: two jobs with a
``checks.py`` each never see each other's, and nothing a job loads shadows an installed package.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import inspect
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError
from runner.grading.custom import split_reference

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from runner.job.source import Where
    from runner.model import Completion
    from runner.spec import CaseSpec, JobSpec

    Check = Callable[[Completion, Mapping[str, Any]], object]

__all__ = ["CheckLoader", "load_checks"]


class CheckLoadError(Exception):
    """A check could not be imported: ``message`` says why, ``fix`` what to do (the caller adds where)."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


class CheckLoader:
    """Imports the functions ``python`` references name, relative to ``base`` (the job file's directory).

    Each module runs once per loader, however many cases name it (they share its module state).
    """

    def __init__(self, base: Path) -> None:
        self._base = base
        self._modules: dict[Path, types.ModuleType] = {}

    def resolve(self, where: Where, prefix: str, case: CaseSpec) -> CaseSpec:
        """``case`` with its expectation's check loaded (unchanged when it names none).

        Raises:
            ConfigError: at ``<prefix>.expect.python`` in ``where``: no such file or function, or the
                module raised while it ran.
        """
        expect = case.expect
        if expect is None or expect.python is None:
            return case
        try:
            check = self.load(expect.python)
        except CheckLoadError as exc:
            raise where.error(f"{prefix}.expect.python", str(exc), exc.fix) from exc
        return dataclasses.replace(case, expect=dataclasses.replace(expect, check=check))

    def load(self, reference: str) -> Check:
        """The function ``"module:function"`` names.

        Raises:
            CheckLoadError: the reference does not lead to a function that takes (completion, vars).
        """
        parts = split_reference(reference)
        if parts is None:  # parse_expect checked it; a stored spec from elsewhere may not have been
            raise CheckLoadError(f"{reference!r} is not module:function", 'write python = "checks:my_check"')
        module_name, function_name = parts
        module = self._module(module_name)
        function = getattr(module, function_name, None)
        if function is None:
            names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
            close = difflib.get_close_matches(function_name, names, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"define def {function_name}(completion, vars)"
            raise CheckLoadError(f"{module.__file__} has no function {function_name!r}", hint)
        if not callable(function):
            raise CheckLoadError(
                f"{module_name}.{function_name} is a {type(function).__name__}, not a function",
                f"define def {function_name}(completion, vars) in {module.__file__}",
            )
        _check_signature(function, f"{module_name}.{function_name}")
        if inspect.isfunction(function):
            return function
        # A callable object (a class instance, a functools.partial) is called through a plain
        # function: the spec is deep-copied as it is stored (dataclasses.asdict), which keeps a function
        # as it is but would copy an object, locks and open files included, or fail on them.
        target = function

        def call(completion: Completion, variables: Mapping[str, Any]) -> object:
            return target(completion, variables)

        return call

    def _module(self, dotted: str) -> types.ModuleType:
        path = self._base.joinpath(*dotted.split(".")).with_suffix(".py")
        key = path.resolve()
        if key in self._modules:
            return self._modules[key]
        if not path.is_file():
            raise CheckLoadError(
                f"no module {dotted!r}: {path} does not exist",
                "put the module beside the job file (a.b is a/b.py), or correct the name",
            )
        # A private, path-derived name: the module's own name lookups (dataclasses, pickling, typing)
        # work while it runs, and no installed module of the same name is shadowed or replaced.
        name = "_runner_check_" + hashlib.sha256(str(key).encode()).hexdigest()[:16]
        module = types.ModuleType(name)
        module.__file__ = str(path)
        sys.modules[name] = module
        try:
            # Compiled here rather than through importlib's loader, which would write a __pycache__
            # folder beside the user's job file. Tracebacks still name the file and line.
            exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)
        except Exception as exc:  # the user's module: whatever its top level raises is a load error
            raise CheckLoadError(
                f"importing {path} raised {type(exc).__name__}: {exc}", "fix the module so it imports"
            ) from exc
        finally:
            sys.modules.pop(name, None)
        self._modules[key] = module
        return module


def _check_signature(function: Any, name: str) -> None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or C function without a signature: let the call tell
        return
    try:
        signature.bind(None, None)
    except TypeError as exc:
        raise CheckLoadError(
            f"{name}{signature} cannot be called with (completion, vars): {exc}",
            f"define it as def {name.rpartition('.')[2]}(completion, vars)",
        ) from exc


def load_checks(job: JobSpec) -> JobSpec:
    """``job`` with every custom check imported from its job file's directory (a run's stored spec,
    read back for ``--resume`` / ``--join``, holds the reference only).

    Raises:
        ConfigError: a check cannot be loaded; the error names the job file, the case and the fix.
    """
    if not any(case.expect is not None and case.expect.python for case in job.cases):
        return job
    base = Path(job.source_path).parent if job.source_path else Path()
    loader = CheckLoader(base)
    cases = []
    for case in job.cases:
        expect = case.expect
        if expect is not None and expect.python is not None:
            try:
                expect = dataclasses.replace(expect, check=loader.load(expect.python))
            except CheckLoadError as exc:
                raise ConfigError(
                    f"case {case.id!r}: {exc}", path=job.source_path, key="expect.python", fix=exc.fix
                ) from exc
            case = dataclasses.replace(case, expect=expect)
        cases.append(case)
    return dataclasses.replace(job, cases=tuple(cases))
