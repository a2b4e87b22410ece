"""A templated job run end to end on the simulator: what is sent, stored and graded is the rendered case."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from runner.job.load import load_job
from runner.job.plan import request_hash
from runner.job.stored import job_from_json
from runner.store import repository
from runner.store.db import open_database
from tests.run.helpers import run_in_process

if TYPE_CHECKING:
    from pathlib import Path

    from runner.simulator.server import SimulatorHandle

ROWS = "id,city,reason\nparis,Paris,stop\n,Tokyo,stop\n"


def _job_text(base_url: str) -> str:
    return f"""\
name = "templated"

[[providers]]
name = "sim"
dialect = "openai-chat"
base_url = "{base_url}"
model = "sim-model"

[[cases]]
id = "city"
system = "You know {{{{ city }}}}."
prompt = "Describe {{{{ city }}}} in {{{{ n }}}} words."
vars = [{{ id = "a", city = "Rome", n = 3, reason = "stop" }}]

[cases.expect]
finish_reason = "{{{{ reason }}}}"

[[cases]]
id = "csv"
prompt = "Weather in {{{{ city }}}}? Keep {{{{ '{{{{' }}}}braces{{{{ '}}}}' }}}}."
vars_file = "rows.csv"

[cases.expect]
finish_reason = ["{{{{ reason }}}}"]

[[cases]]
id = "literal"
prompt = "Keep {{{{ this }}}} as written."
"""


async def test_the_request_sent_and_stored_is_the_rendered_one(
    tmp_path: Path, simulator: SimulatorHandle
) -> None:
    """The simulator receives the rendered prompts, the run stores the rendered spec with each row's vars,
    units carry the expanded ids and the rendered request's hash, and rendered expectations grade them."""
    (tmp_path / "rows.csv").write_text(ROWS)
    job_path = tmp_path / "job.toml"
    job_path.write_text(_job_text(simulator.base_url("openai-chat")))
    job = load_job(job_path)
    with trio.fail_after(30):
        summary, units = await run_in_process(tmp_path, job)
    assert summary.verdicts["passed"] == 4, summary

    sent = sorted(
        (entry.body["messages"][0]["content"], entry.body["messages"][-1]["content"])
        for entry in simulator.log.entries
    )
    assert sent == [
        ("Keep {{ this }} as written.", "Keep {{ this }} as written."),
        ("Weather in Paris? Keep {{braces}}.", "Weather in Paris? Keep {{braces}}."),
        ("Weather in Tokyo? Keep {{braces}}.", "Weather in Tokyo? Keep {{braces}}."),
        ("You know Rome.", "Describe Rome in 3 words."),
    ]

    assert sorted(u.case_id for u in units) == ["city/a", "csv/2", "csv/paris", "literal"]
    database = await trio.to_thread.run_sync(open_database, f"sqlite:///{tmp_path / 'runner.db'}")
    try:
        with database.session() as session:
            run = repository.get_run(session, summary.run_id)
    finally:
        database.close()
    stored = job_from_json(run.job_spec)  # what --resume and --join run
    by_id = {case.id: case for case in stored.cases}
    assert by_id["city/a"].messages == ({"role": "user", "content": "Describe Rome in 3 words."},)
    assert by_id["city/a"].vars == {"id": "a", "city": "Rome", "n": 3, "reason": "stop"}
    assert by_id["csv/2"].vars == {"id": "", "city": "Tokyo", "reason": "stop"}
    assert by_id["csv/2"].expect is not None
    assert by_id["csv/2"].expect.finish_reason == ("stop",)
    provider = stored.providers[0]
    hashes = {u.case_id: u.request_hash for u in units}
    assert all(hashes[case.id] == request_hash(provider, case) for case in stored.cases)
    assert all(outcome.passed for u in units for outcome in u.assertions)
    assert sum(len(u.assertions) for u in units) == 3
