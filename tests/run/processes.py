"""Helpers for lifecycle tests: `runner` as a real OS process, and a read-only look at its database.

A test starts ``python -m runner ...`` with ``start_runner(nursery, ...)``, waits for the run to reach
a point by polling the database from a worker thread (``wait_for``), signals or kills the process, and
then inspects what it left behind with ``RunState``. No part of runner is imported into the process
under test: it is exactly what a user runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from sqlalchemy import text

from runner.store.db import Database
from runner.store.rows import decompress_raw

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunnerProcess:
    """A running ``runner`` command; its output is collected while it runs (no pipe can fill up)."""

    process: trio.Process
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    closed: list[trio.Event] = field(default_factory=lambda: [trio.Event(), trio.Event()])

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stdout(self) -> str:
        return self.out.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.decode(errors="replace")

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait(self, within: float) -> int:
        """The exit status, once the process has exited and its output is read (absolute bound)."""
        with trio.fail_after(within):
            code = await self.process.wait()
            for event in self.closed:
                await event.wait()
        return code

    def peak_rss_kib(self) -> int:
        """Peak resident set size so far (VmHWM), in KiB; Linux only."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1])


def runner_env(**extra: str) -> dict[str, str]:
    """This environment minus RUNNER_* settings (the test passes everything explicitly).

    RUNNER_TRANSPORT stays: the transport fixture (tests/run/conftest.py) runs each test on both.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_") or k == "RUNNER_TRANSPORT"}
    env.update(extra)
    return env


async def start_runner(
    nursery: trio.Nursery,
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> RunnerProcess:
    """Start ``python -m runner ARGS``; it is killed if still running when ``nursery`` is cancelled.

    ``preexec_fn`` runs in the child before runner starts (e.g. to set a resource limit).
    """
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "runner", *args],
        cwd=cwd,
        env=env or runner_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=preexec_fn,
    )
    handle = RunnerProcess(process)
    assert process.stdout is not None
    assert process.stderr is not None
    nursery.start_soon(_collect, process.stdout, handle.out, handle.closed[0])
    nursery.start_soon(_collect, process.stderr, handle.err, handle.closed[1])
    nursery.start_soon(_reap, process)
    return handle


async def run_runner(
    *args: str, cwd: Path, env: dict[str, str] | None = None, within: float = 30
) -> RunnerProcess:
    """Run ``python -m runner ARGS`` to its end (bounded by ``within`` seconds) and return it."""
    async with trio.open_nursery() as nursery:
        handle = await start_runner(nursery, *args, cwd=cwd, env=env)
        await handle.wait(within)
    return handle


async def _collect(stream: trio.abc.ReceiveStream, into: bytearray, closed: trio.Event) -> None:
    async with stream:
        while data := await stream.receive_some(65536):
            into += data
    closed.set()


async def _reap(process: trio.Process) -> None:
    try:
        await process.wait()
    finally:
        # The test failed or timed out with the process still alive: never leave it behind.
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await process.wait()


async def wait_for(check: Callable[[], bool], *, within: float, interval: float = 0.05) -> None:
    """Poll the blocking ``check`` on a worker thread until it is true (TooSlowError after ``within``).

    Polling, not an Event: the state lives in another process's database.
    """
    with trio.fail_after(within):
        while True:
            if await trio.to_thread.run_sync(check):
                return
            await trio.sleep(interval)


@dataclass(frozen=True)
class UnitRow:
    """One unit as stored, with how many attempt and result rows it has."""

    key: str
    status: str
    attempts: int
    results: int  # its current result rows (not those a --retry failed replaced)
    kinds: tuple[str | None, ...]  # error kind of each attempt, in attempt order
    numbers: tuple[int, ...]  # attempt numbers, in order
    reused_from: int | None


class RunState:
    """Read-only queries on a run's database (sync: call them through ``trio.to_thread``)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def _all(self, sql: str, **params: object) -> list[tuple[Any, ...]]:
        with self.database.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def run_ids(self) -> list[str]:
        return [row[0] for row in self._all("SELECT id FROM runs ORDER BY started_at")]

    def run_status(self, run_id: str) -> str:
        return str(self._all("SELECT status FROM runs WHERE id = :r", r=run_id)[0][0])

    def counts(self, run_id: str) -> dict[str, int]:
        rows = self._all("SELECT status, count(*) FROM units WHERE run_id = :r GROUP BY status", r=run_id)
        return {"pending": 0, "running": 0, "ok": 0, "failed": 0, **dict(rows)}

    def done(self, run_id: str | None = None) -> int:
        """Units with a result (of ``run_id``, or of the only run so far; 0 before it exists)."""
        finished = "status IN ('ok', 'failed')"
        if run_id is None:
            return int(self._all(f"SELECT count(*) FROM units WHERE {finished}")[0][0])
        return int(self._all(f"SELECT count(*) FROM units WHERE run_id = :r AND {finished}", r=run_id)[0][0])

    def running(self) -> int:
        return int(self._all("SELECT count(*) FROM units WHERE status = 'running'")[0][0])

    def units(self, run_id: str) -> dict[str, UnitRow]:
        attempts: dict[int, list[tuple[int, str | None]]] = {}
        for unit_id, number, kind in self._all(
            "SELECT a.unit_id, a.number, a.error_kind FROM attempts a JOIN units u ON u.id = a.unit_id"
            " WHERE u.run_id = :r ORDER BY a.unit_id, a.number, a.id",
            r=run_id,
        ):
            attempts.setdefault(unit_id, []).append((number, kind))
        results = dict(
            self._all(
                "SELECT r.unit_id, count(*) FROM results r JOIN units u ON u.id = r.unit_id"
                " WHERE u.run_id = :r AND r.replaced_at IS NULL GROUP BY r.unit_id",
                r=run_id,
            )
        )
        rows = {}
        for unit_id, key, status, reused_from in self._all(
            "SELECT id, key, status, reused_from FROM units WHERE run_id = :r ORDER BY id", r=run_id
        ):
            tried = attempts.get(unit_id, [])
            rows[key] = UnitRow(
                key=key,
                status=status,
                attempts=len(tried),
                results=results.get(unit_id, 0),
                kinds=tuple(kind for _, kind in tried),
                numbers=tuple(number for number, _ in tried),
                reused_from=reused_from,
            )
        return rows

    def raw_captures(self) -> list[bytes]:
        """Every captured raw body, decompressed (a compressed copy would hide a leaked key)."""
        rows = self._all("SELECT raw_capture FROM attempts WHERE raw_capture IS NOT NULL")
        return [decompress_raw(data) for (data,) in rows]
