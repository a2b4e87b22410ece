"""Export: one record per unit with exactly the documented fields, as JSON Lines, CSV and via the CLI."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from click.testing import CliRunner

from runner.cli import cli
from runner.report.export import CSV_FIELDS, EXPORT_FIELDS, write_export
from runner.store import repository
from runner.store.records import AttemptWrite, UnitFinish

from .factories import FAKE_KEY, failed_attempt, make_completion, make_job, make_units, ok_attempt

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session

    from runner.store.db import Database


def finished_run(session: Session) -> str:
    """A run with one unit ok after a retry, one failed, one pending; its id."""
    run = repository.create_run(session, make_job(), host="h", version="v")
    repository.add_units(session, run.id, make_units(3))
    ok, failed = repository.claim_units(session, run.id, "w", limit=2, lease_seconds=60)
    repository.write_batch(
        session,
        [
            AttemptWrite(unit_id=ok.id, attempt=failed_attempt(ok.key, 1), cost_computed=0.00001),
            UnitFinish(
                unit_id=ok.id, owner="w", status="ok", attempt=ok_attempt(ok.key, 2), cost_computed=0.0002
            ),
            UnitFinish(
                unit_id=failed.id,
                owner="w",
                status="failed",
                attempt=failed_attempt(failed.key, 1, kind="server_error"),
                cost_computed=0.00001,
            ),
        ],
    )
    return run.id


def test_jsonl_records_round_trip_exactly(session: Session) -> None:
    """Each unit exports the exact documented record built from what was stored."""
    run_id = finished_run(session)
    out = io.StringIO()
    assert write_export(repository.iter_units(session, run_id), out) == 3
    ok, failed, pending = (json.loads(line) for line in out.getvalue().splitlines())
    assert tuple(ok) == EXPORT_FIELDS
    completion = make_completion()
    assert ok == {
        "run_id": run_id,
        "unit": "mini/case-0/0",
        "provider": "mini",
        "case": "case-0",
        "repeat": 0,
        "status": "ok",
        "attempts": 2,
        "error": None,
        "model": "gpt-4o-mini-2024-07-18",
        "complete": True,
        "choices": [choice.to_dict() for choice in completion.choices],
        "usage": {
            "input_tokens": 120,
            "output_tokens": 45,
            "total_tokens": 165,
            "reasoning_tokens": 10,
            "cached_input_tokens": 64,
            "cache_write_tokens": 0,
        },
        "cost_usd": 0.00001 + 0.000123,
        "cost_source": "computed",
        "timing": {"ttfb_s": 0.25, "ttft_s": 0.9, "first_reasoning_s": 0.4, "duration_s": 2.5},
        "assertions": [],
    }
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "kind": "server_error",
        "http_status": 200,
        "message": "stream ended without [DONE]",
        "retryable": True,
    }
    assert failed["complete"] is False
    assert failed["choices"][0]["text"] == "The wea"
    assert failed["cost_usd"] == 0.00001
    assert pending == {
        **dict.fromkeys(EXPORT_FIELDS),
        "run_id": run_id,
        "unit": "mini/case-2/0",
        "provider": "mini",
        "case": "case-2",
        "repeat": 0,
        "status": "pending",
        "attempts": 0,
        "choices": [],
        "timing": {"ttfb_s": None, "ttft_s": None, "first_reasoning_s": None, "duration_s": None},
        "assertions": [],
    }


def test_reported_cost_source(session: Session) -> None:
    """A unit whose every attempt had a provider-reported cost exports cost_source reported."""
    run = repository.create_run(session, make_job(), host="h", version="v")
    repository.add_units(session, run.id, make_units(1))
    (unit,) = repository.claim_units(session, run.id, "w", limit=1, lease_seconds=60)
    repository.write_batch(
        session, [UnitFinish(unit_id=unit.id, owner="w", status="ok", attempt=ok_attempt(unit.key))]
    )
    out = io.StringIO()
    write_export(repository.iter_units(session, run.id), out)
    record = json.loads(out.getvalue())
    assert (record["cost_usd"], record["cost_source"]) == (0.000123, "reported")


def test_csv_flattens_the_first_choice(session: Session) -> None:
    """CSV has one row per unit with the first choice's columns and JSON tool calls."""
    run_id = finished_run(session)
    out = io.StringIO()
    write_export(repository.iter_units(session, run_id), out, "csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_FIELDS
    assert len(rows) == 3
    assert rows[0]["text"] == "The weather in Tokyo is sunny."
    assert json.loads(rows[0]["tool_calls"]) == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Tokyo"}'}
    ]
    assert rows[0]["ttft_s"] == "0.9"
    assert rows[1]["error_kind"] == "server_error"
    assert rows[2]["status"] == "pending"


def test_cli_export_latest_to_file(db: Database, session: Session, tmp_path: Path) -> None:
    """``runner export latest --format jsonl --out FILE`` writes the latest run without the fake key."""
    run_id = finished_run(session)
    out = tmp_path / "export.jsonl"
    result = CliRunner().invoke(cli, ["export", "latest", "--db", db.url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == [run_id] * 3
    assert FAKE_KEY not in out.read_text()
    result = CliRunner().invoke(cli, ["export", run_id, "--db", db.url, "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("run_id,unit,")


def test_cli_export_unknown_run_and_db_upgrade(db: Database) -> None:
    """An unknown run is a clean CLI error and ``runner db upgrade`` succeeds on a migrated database."""
    result = CliRunner().invoke(cli, ["export", "r-zzzzzz", "--db", db.url])
    assert result.exit_code == 2
    assert "no run 'r-zzzzzz'" in result.output
    result = CliRunner().invoke(cli, ["db", "upgrade", "--db", db.url])
    assert result.exit_code == 0, result.output
