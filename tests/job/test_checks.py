"""Custom checks load at job-load time from a module beside the job file; a bad one names file, line, fix."""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest

from runner.errors import ConfigError
from runner.job.checks import load_checks
from runner.job.load import load_job, parse_job
from runner.model import Choice, Completion
from runner.spec import job_to_json

JOB = """\
name = "checked"

[[providers]]
name = "p"
dialect = "openai-chat"
base_url = "https://api.example.com/v1"
model = "m"

[[cases]]
id = "capital"
prompt = "Capital of France?"
repeats = 3

[cases.expect]
contains = "Paris"
python = "{reference}"
"""
CHECKS = """\
CALLS = []

def is_capital(completion, vars):
    CALLS.append(vars)
    return {"pass": completion.choices[0].text.strip() == "Paris", "score": 1.0, "reason": "exact"}
"""
ANSWER = Completion(complete=True, choices=(Choice(index=0, text="Paris", finish_reason="stop"),))


def _job(tmp_path: Path, reference: str = "checks:is_capital", module: str | None = CHECKS) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(JOB.format(reference=reference))
    if module is not None:
        (tmp_path / "checks.py").write_text(module)
    return path


def _python_line(path: Path) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("python"))


def test_the_function_is_loaded_and_called_with_the_completion_and_vars(tmp_path: Path) -> None:
    """load_job imports checks.py from the job file's directory; the check it holds is the function."""
    job = load_job(_job(tmp_path))
    expect = job.cases[0].expect
    assert expect is not None
    assert expect.check is not None
    assert expect.check(ANSWER, {"city": "x"}) == {"pass": True, "score": 1.0, "reason": "exact"}
    assert expect.check.__globals__["CALLS"] == [{"city": "x"}]


def test_loading_leaves_sys_modules_and_sys_path_as_they_were(tmp_path: Path) -> None:
    """The module runs under a private name that is gone afterwards; sys.path is never touched."""
    modules, path = set(sys.modules), list(sys.path)
    load_job(_job(tmp_path))
    assert set(sys.modules) == modules
    assert sys.path == path
    assert "checks" not in sys.modules


def test_two_jobs_each_load_their_own_module_of_the_same_name(tmp_path: Path) -> None:
    """checks.py beside one job is not the checks.py beside another (no shared module cache)."""
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    first = load_job(_job(one, module="def is_capital(completion, vars):\n    return True\n"))
    second = load_job(_job(two, module="def is_capital(completion, vars):\n    return 0.25\n"))
    checks = [j.cases[0].expect.check for j in (first, second) if j.cases[0].expect]
    assert [c(ANSWER, {}) for c in checks if c] == [True, 0.25]


def test_a_dotted_module_is_a_file_in_a_subdirectory(tmp_path: Path) -> None:
    """python = "grading.rules:f" loads grading/rules.py beside the job file."""
    (tmp_path / "grading").mkdir()
    (tmp_path / "grading" / "rules.py").write_text("def f(completion, vars):\n    return False\n")
    job = load_job(_job(tmp_path, "grading.rules:f", module=None))
    check = job.cases[0].expect.check if job.cases[0].expect else None
    assert check is not None
    assert check(ANSWER, {}) is False


@pytest.mark.parametrize(
    ("reference", "module", "message", "fix"),
    [
        pytest.param("missing:f", CHECKS, "missing.py does not exist", "beside the job file", id="no-module"),
        pytest.param(
            "checks:is_capitol", CHECKS, "no function 'is_capitol'", "did you mean 'is_capital'", id="typo"
        ),
        pytest.param(
            "checks:is_capital",
            "import no_such_package_xyz\n",
            "raised ModuleNotFoundError: No module named 'no_such_package_xyz'",
            "fix the module",
            id="module-raises",
        ),
        pytest.param("checks:CALLS", CHECKS, "is a list, not a function", "def CALLS", id="not-callable"),
        pytest.param(
            "checks:one",
            "def one(completion):\n    return True\n",
            "cannot be called with (completion, vars)",
            "def one(completion, vars)",
            id="wrong-arity",
        ),
    ],
)
def test_a_check_that_cannot_load_names_file_line_and_fix(
    tmp_path: Path, reference: str, module: str, message: str, fix: str
) -> None:
    """A missing module or function fails the load at the python key's line, with a fix."""
    path = _job(tmp_path, reference, module)
    with pytest.raises(ConfigError) as caught:
        load_job(path)
    error = caught.value
    assert (error.path, error.key, error.line) == (str(path), "cases[0].expect.python", _python_line(path))
    assert message in str(error.args[0])
    assert fix in (error.fix or "")


def test_parse_job_runs_no_python_and_load_checks_loads_later(tmp_path: Path) -> None:
    """parse_job (text only) leaves the check unloaded; load_checks imports it from the job's directory."""
    path = _job(tmp_path)
    job = parse_job(path.read_text(), path=str(path))
    assert job.cases[0].expect is not None
    assert job.cases[0].expect.check is None
    loaded = load_checks(job)
    assert loaded.cases[0].expect is not None
    assert loaded.cases[0].expect.check is not None
    (tmp_path / "checks.py").unlink()
    with pytest.raises(ConfigError, match="case 'capital': no module 'checks'") as caught:
        load_checks(job)
    assert caught.value.path == str(path)


def test_pass_rate_over_one_repeat_is_allowed_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A pass_rate where the case runs once loads, and the log says it is the unit's own verdict."""
    path = tmp_path / "job.toml"
    text = JOB.replace('python = "{reference}"', "pass_rate = 0.8").replace("repeats = 3", "repeats = 1")
    path.write_text(textwrap.dedent(text))
    with caplog.at_level(logging.WARNING):
        job = load_job(path)
    assert job.cases[0].expect is not None
    assert job.cases[0].expect.pass_rate == 0.8
    assert "1 case(s) set pass_rate over 1 repeat (first: 'capital')" in caplog.text


def test_loading_writes_nothing_beside_the_job_file(tmp_path: Path) -> None:
    """No __pycache__ appears beside the user's files; a syntax error names the module's line."""
    load_job(_job(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checks.py", "job.toml"]
    (tmp_path / "checks.py").write_text("def is_capital(completion, vars):\n    return (\n")
    with pytest.raises(ConfigError, match=r"raised SyntaxError: .*\(checks.py, line 2\)"):
        load_job(tmp_path / "job.toml")


def test_a_callable_object_is_held_behind_a_function_and_the_job_still_stores(tmp_path: Path) -> None:
    """An instance with __call__ (holding a lock, which cannot be copied) checks, and the spec stores."""
    module = (
        "import threading\n\nclass Checker:\n    def __init__(self):\n        self.lock = threading.Lock()\n"
        "    def __call__(self, completion, vars):\n        with self.lock:\n            return 0.9\n\n"
        "is_capital = Checker()\n"
    )
    job = load_job(_job(tmp_path, module=module))
    check = job.cases[0].expect.check if job.cases[0].expect else None
    assert check is not None
    assert check(ANSWER, {}) == 0.9
    stored = job_to_json(job)
    assert stored["cases"][0]["expect"] == {"contains": "Paris", "python": "checks:is_capital"}
