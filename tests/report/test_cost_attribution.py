"""`runner cost --by model` on a real run: attempts without a reported model go to the model requested."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import trio
from click.testing import CliRunner

from runner.cli import cli
from runner.report.api import build_cost_report
from runner.report.cost import build_cost_context
from runner.report.render import make_environment, render
from runner.store.db import open_database
from tests.report.factories import attempt_costs, make_run
from tests.run.helpers import make_job, provider_for, run_in_process

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import StartSimulator


async def test_failed_attempts_are_attributed_to_the_requested_model(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    """A failed attempt (no model reported) is filed under its request's model and counted as attributed."""
    simulator = await start_simulator()
    flaky = dataclasses.replace(
        provider_for(simulator, "openai-chat", headers={"x-sim-faults": "1=http_500"}), model="gpt-sim-1"
    )
    down = dataclasses.replace(
        provider_for(simulator, "runware", name="down", headers={"x-sim-faults": "http_500@1"}),
        model="runware:sim@1",
    )
    with trio.fail_after(30):
        _, units = await run_in_process(tmp_path, make_job([flaky, down]))
    assert [a.model for u in units if u.provider == "openai-chat" for a in u.attempts] == [None, "gpt-sim-1"]
    assert all(a.model is None for u in units if u.provider == "down" for a in u.attempts)

    url = f"sqlite:///{tmp_path / 'runner.db'}"
    with open_database(url) as db, db.session() as session:
        context = build_cost_report(session, by=("model",))
    rows = {row.keys[0]: row for row in context.rows}
    assert set(rows) == {"gpt-sim-1", "runware:sim@1"}
    assert (rows["gpt-sim-1"].attempts, rows["gpt-sim-1"].attributed_attempts) == (2, 1)
    assert rows["runware:sim@1"].attempts == rows["runware:sim@1"].attributed_attempts == 3
    assert context.total.attributed_attempts == 4
    assert "attributed" in context.note

    result = CliRunner().invoke(cli, ["cost", "--db", url, "--by", "model"])
    assert result.exit_code == 0, result.output
    assert "not reported" not in result.output
    assert "attributed" in result.output


def test_html_marks_attributed_figures() -> None:
    """The HTML cost report by model has an "attributed" column and says what it means."""
    facts = [dataclasses.replace(f, requested_model="asked-for") for f in attempt_costs(make_run(20))]
    facts = [dataclasses.replace(f, model=None) if not f.ok else f for f in facts]
    html = render(make_environment(), build_cost_context(facts, by=("model",)))
    assert ">attributed</abbr></th>" in html
    assert "are attributed: their provider reported no model" in html
    assert "not reported" not in html
