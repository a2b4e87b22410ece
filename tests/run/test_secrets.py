"""A provider that echoes the API key never gets it stored, exported, reported, replayed or printed.

`runner run` runs as a real process against a loopback provider that quotes the request's key (and
another provider's) in a 401 body, a mid-stream error event, reasoning, answer text (whole, split
across SSE events, split across HTTP chunks) and tool-call arguments. Then every byte runner left
behind is scanned: the database (SQLite file and its WAL after a checkpoint, or a pg_dump), every
raw capture decompressed, the exports, the report, `runner parse --attempt` and the output.
"""

from __future__ import annotations

import functools
import re
import secrets
import shutil
import sqlite3
import subprocess
import zlib
from typing import TYPE_CHECKING

import pytest
import trio
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from runner.cli import cli
from tests.fakes.echo_provider import EchoProvider
from tests.run.processes import run_runner, runner_env
from tests.run.stores import BACKENDS, database_url

if TYPE_CHECKING:
    from pathlib import Path

# Slow: `runner run` as a subprocess, on both databases.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("transport")]

CASES = ("echo-401", "echo-stream-error", "echo-answer")
MARKER = b"[REDACTED]"


def _job(base_url: str) -> str:
    providers = "".join(
        f"""
[[providers]]
name = "{name}"
dialect = "openai-chat"
base_url = "{base_url}"
model = "m"
api_key_env = "{env}"
concurrency = 1
"""
        for name, env in (("echo", "ECHO_KEY_A"), ("other", "ECHO_KEY_B"))
    )
    cases = "".join(f'\n[[cases]]\nid = "{case}"\nprompt = "{case}"\n' for case in CASES)
    return f'name = "echo-keys"\n[defaults.retry]\nmax_attempts = 1\n{providers}{cases}'


def _database_bytes(url: str, schema: str | None, tmp_path: Path) -> list[bytes]:
    """Every byte the database holds: the SQLite files after a checkpoint, or a pg_dump of the schema;
    plus every raw capture decompressed (zlib would hide a key from a plain byte scan)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            blobs = [
                zlib.decompress(row[0])
                for row in conn.execute(text("SELECT raw_capture FROM attempts"))
                if row[0] is not None
            ]
    finally:
        engine.dispose()
    assert blobs, "no raw capture was stored: the scan would prove nothing"
    if schema is None:
        db_file = tmp_path / "runner.db"
        with sqlite3.connect(db_file) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        files = [p for p in tmp_path.iterdir() if p.name.startswith("runner.db")]
        return blobs + [p.read_bytes() for p in files]
    pg_dump = shutil.which("pg_dump")
    assert pg_dump is not None, "pg_dump is needed for the PostgreSQL byte scan"
    dump = subprocess.run(
        [pg_dump, "-h", "127.0.0.1", "-U", "postgres", "-n", schema, "test"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert b"COPY" in dump
    return [*blobs, dump]


def _cli(*args: str, ok: tuple[int, ...] = (0,)) -> bytes:
    """Output (stdout and stderr) of a runner command run in this process."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code in ok, result.output
    return result.stdout_bytes + result.stderr_bytes


@pytest.mark.parametrize("backend", BACKENDS)
async def test_echoed_keys_are_nowhere(backend: str, tmp_path: Path, nursery: trio.Nursery) -> None:
    """No byte runner stores, exports, reports, replays or prints holds either provider's key."""
    keys = {
        "ECHO_KEY_A": f"sk-echo-{secrets.token_hex(16)}",
        "ECHO_KEY_B": f"sk/other+{secrets.token_hex(12)}",
    }
    server: EchoProvider = await nursery.start(EchoProvider(also_echo=tuple(keys.values())).serve)
    job = tmp_path / "job.toml"
    job.write_text(_job(server.base_url))
    report = tmp_path / "report.html"
    with database_url(backend, tmp_path) as (url, schema):
        args = ("run", str(job), "--db", url, "--capture", "all", "--report", str(report), "--quiet")
        process = await run_runner(*args, cwd=tmp_path, env=runner_env(**keys), within=60)
        assert process.process.returncode == 1, process.stderr
        assert server.requests == 2 * len(CASES)
        found = re.search(r"run (r-\w+)", process.stderr)
        assert found is not None, process.stderr
        run_id = found[1]

        outputs = [bytes(process.out), bytes(process.err), report.read_bytes()]
        outputs += await trio.to_thread.run_sync(_database_bytes, url, schema, tmp_path)
        for fmt in ("jsonl", "csv"):
            outputs.append(
                await trio.to_thread.run_sync(_cli, "export", run_id, "--db", url, "--format", fmt)
            )
        for attempt in range(1, 2 * len(CASES) + 1):
            for extra in ((), ("--raw",)):
                parse = functools.partial(_cli, ok=(0, 2))  # 2: an attempt whose capture was not kept
                outputs.append(
                    await trio.to_thread.run_sync(
                        parse, "parse", "--attempt", str(attempt), "--db", url, *extra
                    )
                )
    everything = b"\n".join(outputs)
    for key in keys.values():
        assert key.encode() not in everything
        assert key[6:].encode() not in everything  # nor the part after a cut prefix
    # The echoes were stored, redacted: the scan did see them.
    assert everything.count(MARKER) >= 20
    # The answers' captures are not kept: the key was split across SSE events there, so no
    # replacement of bytes could take it out and leave a stream (runner parse says so, twice each).
    assert everything.count(b"never a capture whose replay would rebuild an API key") == 2 * 2
