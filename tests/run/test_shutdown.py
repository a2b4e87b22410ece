"""Ctrl-C and SIGTERM while many attempts are finishing: `runner run` as a real process against a
simulator in this test's process, whose log says which requests were sent (issue 10, item 3).

Every request the provider received must have an attempt row afterwards: finished ones whole (their
unit ok, their tokens counted), cut-off ones as ``cancelled`` with what they had received.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from sqlalchemy import text

from runner.simulator import SimulatorConfig
from runner.store.db import Database, open_database
from runner.store.rows import decompress_raw
from tests.conftest import StartSimulator
from tests.run.processes import RunState, start_runner, wait_for

pytestmark = pytest.mark.slow

# Many short streams at high concurrency: at any moment some attempts are mid-stream, some have just
# read their terminal signal and some are handing their unit's end to the writer. One case per unit,
# each with its own prompt, so the simulator's log names the unit of every request it served.
UNITS = 600
JOB = """
name = "shutdown"
[defaults.retry]
max_attempts = 1

[[providers]]
name = "sim"
dialect = "openai-chat"
base_url = "{base_url}"
model = "sim-model"
concurrency = 48
params = {{ stream_options = {{ include_usage = true }} }}
"""
CASE = '\n[[cases]]\nid = "c{n}"\nprompt = "Say something, {n}."\n'


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """The run's SQLite file, migrated up front so the test can poll it while `runner` writes."""
    with open_database(f"sqlite:///{tmp_path / 'runner.db'}") as database:
        yield database


@dataclass(frozen=True)
class StoredAttempt:
    case_id: str
    unit_status: str
    kind: str | None
    bytes_received: int
    first_byte_s: float | None
    end_s: float | None
    output_tokens: int | None
    partial_text: str
    raw: bytes | None


def stored_attempts(database: Database) -> list[StoredAttempt]:
    sql = (
        "SELECT u.case_id, u.status, a.error_kind, a.bytes_received, a.first_byte_s, a.end_s,"
        " a.output_tokens, a.partial_choices, a.raw_capture FROM attempts a JOIN units u ON u.id = a.unit_id"
    )
    with database.engine.connect() as conn:
        rows = conn.execute(text(sql)).all()
    return [
        StoredAttempt(
            case_id=case_id,
            unit_status=status,
            kind=kind,
            bytes_received=nbytes or 0,
            first_byte_s=first_byte,
            end_s=end,
            output_tokens=tokens,
            partial_text="".join(c.get("text", "") for c in orjson.loads(partial)) if partial else "",
            raw=decompress_raw(raw) if raw is not None else None,
        )
        for case_id, status, kind, nbytes, first_byte, end, tokens, partial, raw in rows
    ]


@pytest.mark.parametrize(
    "signum", [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]
)
async def test_signal_keeps_every_sent_attempt_and_what_cut_ones_received(
    tmp_path: Path,
    sqlite_db: Database,
    start_simulator: StartSimulator,
    nursery: trio.Nursery,
    signum: int,
) -> None:
    """Every request the simulator served has an attempt row; cut-off ones keep partial output,
    byte counts, timings and (with --capture all) their raw body."""
    simulator = await start_simulator(
        SimulatorConfig.from_dict({"latency": "ttft=0.02,gap=0.01", "output_tokens": "uniform:5:25"})
    )
    job = tmp_path / "job.toml"
    cases = "".join(CASE.format(n=n) for n in range(UNITS))
    job.write_text(JOB.format(base_url=simulator.base_url("openai-chat")) + cases)
    state = RunState(sqlite_db)
    process = await start_runner(
        nursery,
        "run",
        str(job),
        "--db",
        sqlite_db.url,
        "--capture",
        "all",
        "--report",
        "-",
        cwd=tmp_path,
    )
    await wait_for(lambda: state.done() >= 100, within=60)
    process.send_signal(signum)
    assert await process.wait(within=20) == 130, process.stderr
    assert "Traceback" not in process.stderr

    attempts = await trio.to_thread.run_sync(stored_attempts, sqlite_db)
    # Every request the simulator served has its attempt row (requests cut off before they reached
    # it have one too): none was dropped between its stream's end and the writer.
    served = {_case_of(entry.body) for entry in simulator.log}
    assert len(served) == len(simulator.log)  # one attempt per unit (max_attempts = 1)
    assert served <= {a.case_id for a in attempts}, served - {a.case_id for a in attempts}
    finished = [a for a in attempts if a.kind is None]
    assert finished
    assert all(a.unit_status == "ok" and a.output_tokens for a in finished)
    cut = [a for a in attempts if a.kind == "cancelled"]
    assert {a.kind for a in attempts} <= {None, "cancelled"}
    assert all(a.unit_status == "pending" for a in cut)
    streaming = [a for a in cut if a.first_byte_s is not None]
    assert streaming, "some attempts were cut off mid-stream"
    for attempt in cut:
        assert attempt.end_s is not None
        assert len(attempt.raw or b"") == attempt.bytes_received  # an empty body stores no capture
    for attempt in streaming:
        assert attempt.bytes_received > 0
    assert any(a.partial_text for a in streaming), "the cut-off streams kept their partial answers"


def _case_of(body: Any) -> str:
    """The case id a served request's prompt names ("Say something, 12." is case c12)."""
    prompt: str = body["messages"][-1]["content"]
    return "c" + prompt.removeprefix("Say something, ").removesuffix(".")
