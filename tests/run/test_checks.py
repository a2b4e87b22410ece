"""Custom checks and pass rates through the engine and the simulator: stored outcomes, summary, exit code."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest
import trio

from runner.errors import ConfigError
from runner.grading.assertions import parse_expect
from runner.job.load import load_job
from runner.run.planning import open_run
from runner.run.service import RunOptions
from runner.spec import CaseSpec
from runner.store.db import open_database
from tests.jobfile import write_checked_job
from tests.run.helpers import make_job, provider_for, run_in_process

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from runner.model import Completion
    from tests.conftest import StartSimulator

# Module state is the check's own: two of every ten calls fail, whichever units they are.
CHECKS = """\
CALLS = []

def every_fifth_fails(completion, vars):
    CALLS.append(1)
    return len(CALLS) % 5 != 0
"""


@pytest.mark.parametrize(
    ("rate", "code", "below"), [pytest.param(0.8, 0, 0, id="met"), pytest.param(0.9, 1, 1, id="missed")]
)
async def test_a_rated_case_fails_the_run_only_below_its_pass_rate(
    tmp_path: Path, rate: float, code: int, below: int
) -> None:
    """8 of 10 repeats pass: pass_rate 0.8 exits 0 (unit verdicts stay failed), 0.9 exits 1."""
    path = write_checked_job(tmp_path, CHECKS, check="checks:every_fifth_fails", rate=rate, repeats=10)
    with trio.fail_after(60):
        summary, units = await run_in_process(tmp_path, load_job(path))
    assert [u.verdict for u in units].count("failed assertions") == 2
    assert summary.verdicts["failed assertions"] == 2
    assert [(r.case_id, r.provider, r.passed, r.graded, r.required) for r in summary.rates] == [
        ("flaky", "sim", 8, 10, rate)
    ]
    assert summary.cases_below_rate == below
    assert summary.exit_code == code
    assert f"cases below their pass_rate {below}" in summary.describe()


async def test_the_check_gets_the_rows_vars_and_an_exception_is_a_stored_error(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    """The engine hands the check the completion and the case's vars; a raise is stored as error=True."""
    seen: list[Mapping[str, Any]] = []

    def reads_vars(completion: Completion, variables: Mapping[str, Any]) -> dict[str, Any]:
        seen.append(dict(variables))
        return {
            "pass": bool(completion.choices[0].text),
            "score": 0.75,
            "reason": f"city {variables['city']}",
        }

    def raises(completion: Completion, variables: Mapping[str, Any]) -> bool:
        raise ZeroDivisionError("division by zero")

    def case(case_id: str, check: Any) -> CaseSpec:
        expect = dataclasses.replace(parse_expect({"python": "checks:f"}), check=check)
        messages = ({"role": "user", "content": "Say something."},)
        return CaseSpec(id=case_id, messages=messages, expect=expect, vars={"city": "Paris"})

    simulator = await start_simulator()
    provider = provider_for(simulator, "openai-chat", name="sim")
    with trio.fail_after(60):
        summary, units = await run_in_process(
            tmp_path, make_job([provider], [case("reads", reads_vars), case("raises", raises)])
        )
    by_case = {u.case_id: u for u in units}
    assert seen == [{"city": "Paris"}]
    (good,) = by_case["reads"].assertions
    assert (good.name, good.passed, good.score, good.detail, good.error) == (
        "python",
        True,
        0.75,
        "city Paris",
        False,
    )
    (bad,) = by_case["raises"].assertions
    assert (bad.passed, bad.error, bad.detail) == (False, True, "ZeroDivisionError: division by zero")
    assert by_case["raises"].verdict == "failed assertions"
    assert summary.exit_code == 1


def test_resume_imports_the_checks_again_from_beside_the_job_file(tmp_path: Path) -> None:
    """A run's stored spec names its checks; --resume imports them again, and a vanished module is a
    clean load error naming the job file and the case."""
    path = write_checked_job(tmp_path, CHECKS, check="checks:every_fifth_fails", rate=0.8, repeats=10)
    with open_database(f"sqlite:///{tmp_path / 'runner.db'}") as database:
        run, _ = open_run(database, load_job(path), RunOptions(display="quiet"))
        _, stored = open_run(database, None, RunOptions(display="quiet", resume=run.id))
        expect = stored.cases[0].expect
        assert expect is not None
        assert expect.check is not None
        assert expect.check.__name__ == "every_fifth_fails"
        (tmp_path / "checks.py").unlink()
        with pytest.raises(ConfigError, match="case 'flaky': no module 'checks'") as caught:
            open_run(database, None, RunOptions(display="quiet", resume=run.id))
        assert caught.value.path == str(path)
