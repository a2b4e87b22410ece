"""U+0000 in what a provider sends is stored, read back, exported and replayed exactly, on both databases.

PostgreSQL's text cannot hold NUL: before runner escaped it there (runner.store.escape), one such
character failed the writer's batch, and every resume failed again.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

import orjson
import pytest
import trio
from click.testing import CliRunner

from runner.cli import cli
from runner.report.api import write_run_report
from runner.report.export import write_export
from runner.run.planning import open_run
from runner.run.service import RunOptions, execute_job
from runner.spec import CaseSpec, ProviderSpec, RetryPolicy, Timeouts
from runner.store import repository
from runner.store.db import open_database
from tests.fakes.echo_provider import (
    NUL_ARGUMENTS,
    NUL_ERROR,
    NUL_MODEL,
    NUL_REASONING,
    NUL_TEXT,
    EchoProvider,
)
from tests.run.helpers import make_job, stored_units
from tests.run.stores import BACKENDS, database_url

if TYPE_CHECKING:
    from pathlib import Path

    from runner.spec import JobSpec
    from runner.store.records import UnitView


def _job(server: EchoProvider) -> JobSpec:
    provider = ProviderSpec(
        name="echo",
        dialect="openai-chat",
        base_url=server.base_url,
        model="m",
        concurrency=1,
        retry=RetryPolicy(max_attempts=1),
        timeouts=Timeouts(connect=2, first_byte=5, first_token=5, idle=5, total=10),
    )
    cases = [
        CaseSpec(id=name, messages=({"role": "user", "content": name},))
        for name in ("nul-answer", "nul-error")
    ]
    return make_job([provider], cases)


async def _run(url: str, job: JobSpec, options: RunOptions) -> list[UnitView]:
    database = await trio.to_thread.run_sync(open_database, url)
    try:
        run, job = await trio.to_thread.run_sync(open_run, database, job, options)
        await execute_job(database, run, job, options, api_keys={})
        return await stored_units(database, run.id)
    finally:
        database.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_nul_round_trips_through_store_export_parse_and_resume(
    backend: str, tmp_path: Path, nursery: trio.Nursery
) -> None:
    """Answer, reasoning, tool arguments, model and error message with NUL and U+2400 come back exact."""
    server: EchoProvider = await nursery.start(EchoProvider().serve)
    options = RunOptions(display="quiet", raw_capture="all")
    with database_url(backend, tmp_path) as (url, _), trio.fail_after(60):
        units = await _run(url, _job(server), options)
        by_case = {unit.case_id: unit for unit in units}
        answer, error = by_case["nul-answer"], by_case["nul-error"]
        assert answer.status == "ok"
        assert answer.completion is not None
        choice = answer.completion.choices[0]
        assert (choice.text, choice.reasoning) == (NUL_TEXT, NUL_REASONING)
        assert choice.tool_calls[0].arguments == NUL_ARGUMENTS
        assert answer.completion.model == NUL_MODEL
        assert answer.attempts[0].model == NUL_MODEL
        assert error.status == "failed"
        assert error.final is not None
        assert error.final.error is not None
        assert NUL_ERROR in error.final.error.message

        run_id = units[0].run_id
        exported = await trio.to_thread.run_sync(_export, url, run_id)
        jsonl = {record["case"]: record for record in map(orjson.loads, exported["jsonl"].splitlines())}
        assert jsonl["nul-answer"]["choices"][0]["text"] == NUL_TEXT
        assert jsonl["nul-answer"]["choices"][0]["tool_calls"][0]["arguments"] == NUL_ARGUMENTS
        assert NUL_ERROR in jsonl["nul-error"]["error"]["message"]
        rows = {row["case"]: row for row in csv.DictReader(io.StringIO(exported["csv"], newline=""))}
        assert (rows["nul-answer"]["text"], rows["nul-answer"]["reasoning"]) == (NUL_TEXT, NUL_REASONING)
        assert NUL_ERROR in rows["nul-error"]["error_message"]

        attempt = answer.attempts[0].id
        parsed = CliRunner().invoke(cli, ["parse", "--attempt", str(attempt), "--db", url])
        assert parsed.exit_code == 0, parsed.output
        replayed = orjson.loads(parsed.stdout_bytes)
        assert replayed["choices"][0]["text"] == NUL_TEXT
        assert replayed["choices"][0]["reasoning"] == NUL_REASONING

        report = await trio.to_thread.run_sync(_report, url, run_id, tmp_path)
        assert b"\x00" not in report

        # A resume reads and rewrites the run's rows: it must not trip over them either.
        resumed = RunOptions(display="quiet", raw_capture="all", resume=run_id)
        again = await _run(url, _job(server), resumed)
        assert {unit.status for unit in again} == {"ok", "failed"}


def _export(url: str, run_id: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with open_database(url) as database, database.session() as session:
        for fmt in ("jsonl", "csv"):
            buffer = io.StringIO(newline="")
            write_export(repository.iter_units(session, run_id), buffer, "csv" if fmt == "csv" else "jsonl")
            out[fmt] = buffer.getvalue()
    return out


def _report(url: str, run_id: str, tmp_path: Path) -> bytes:
    with open_database(url) as database, database.session() as session:
        return write_run_report(session, run_id, tmp_path / "report.html").read_bytes()
