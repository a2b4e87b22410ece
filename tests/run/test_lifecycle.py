"""The engine's lifecycle guarantees, with `runner run` as a real OS process on real databases:
Ctrl-C / SIGTERM / SIGKILL then resume, --join on PostgreSQL, the budget, --reuse, no key leak, flat memory.
"""

from __future__ import annotations

import re
import signal
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from runner.store.db import Database, open_database
from tests.conftest import StartSimulator
from tests.fakes.tap import Tap, serve_tap
from tests.jobfile import repeats_job, sim_provider, write_job
from tests.run.processes import (
    RunnerProcess,
    RunState,
    UnitRow,
    run_runner,
    runner_env,
    start_runner,
    wait_for,
)

# Slow (left out by `-m "not slow"`; CI runs them): subprocess lifecycles, signals, resume, join, 100k units.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("transport")]

RETRY = """
[defaults.retry]
max_attempts = 3
backoff_initial = 0.01
backoff_max = 0.05
"""

# 40 units, 4 at a time, ~0.4 s each: the run takes ~4 s, long enough to stop it partway.
SLOW_JOB = f"""
name = "lifecycle"
[defaults]
repeats = 40
{RETRY}
{sim_provider(concurrency=4, output_tokens=10, ttft=0.2)}
[[cases]]
id = "c"
prompt = "Say something."
"""


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """The run's SQLite file, migrated up front so the test can poll it while `runner` writes."""
    url = f"sqlite:///{tmp_path / 'runner.db'}"
    with open_database(url) as database:
        yield database


def summary_run_id(process: RunnerProcess) -> str:
    """The run id `runner run` announced on stderr."""
    match = re.search(r"^run (r-\w+) \(", process.stderr, re.MULTILINE)
    assert match, process.stderr
    return match.group(1)


def assert_consistent(units: dict[str, UnitRow]) -> None:
    """Ok units have exactly one result set; units without a result have no result rows."""
    for unit in units.values():
        if unit.status == "ok":
            assert unit.results == 1, unit
        else:
            assert unit.results == 0, unit
        assert unit.numbers == tuple(range(1, unit.attempts + 1)), unit  # numbered once each, no gaps


def assert_resumed_exactly(before: dict[str, UnitRow], after: dict[str, UnitRow]) -> None:
    """Every unit has its result once; units that had one before were not requested again."""
    assert set(after) == set(before)
    for key, unit in after.items():
        assert unit.status == "ok", unit
        assert unit.results == 1, unit
        if before[key].status in ("ok", "failed"):
            assert unit.attempts == before[key].attempts, (before[key], unit)
        else:
            assert unit.attempts == before[key].attempts + 1, (before[key], unit)
    assert_consistent(after)


@pytest.mark.parametrize(
    "signum", [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")]
)
async def test_signal_interrupts_then_resume_finishes_the_rest(
    tmp_path: Path, sqlite_db: Database, nursery: trio.Nursery, signum: int
) -> None:
    """A signal partway exits 130 within 5 s, cut-off attempts stored; --resume latest does the rest once."""
    state = RunState(sqlite_db)
    job = write_job(tmp_path, SLOW_JOB)
    db = ["--db", sqlite_db.url]
    process = await start_runner(
        nursery, "run", str(job), *db, "--report", str(tmp_path / "r.html"), cwd=tmp_path
    )
    await wait_for(lambda: state.done() >= 8, within=30)
    process.send_signal(signum)
    signalled = trio.current_time()
    assert await process.wait(within=15) == 130, process.stderr
    assert trio.current_time() - signalled < 5
    run_id = summary_run_id(process)
    assert f"resume with: runner run --resume {run_id}" in process.stderr
    assert await trio.to_thread.run_sync(state.run_status, run_id) == "interrupted"
    before = await trio.to_thread.run_sync(state.units, run_id)
    counts = {s: sum(u.status == s for u in before.values()) for s in ("ok", "pending", "running")}
    # The report of the interrupted run tells its reader how to finish it.
    report = (tmp_path / "r.html").read_text()
    assert f"{counts['pending']} units have no result yet (the run was interrupted)" in report
    assert f"runner run --resume {run_id}" in report
    assert counts["running"] == 0  # leases released
    assert 8 <= counts["ok"] < 40
    assert counts["ok"] + counts["pending"] == 40
    cut = [u for u in before.values() if u.kinds and u.kinds[-1] == "cancelled"]
    assert cut, "the in-flight attempts were stored as cancelled"
    for unit in before.values():
        if unit.status == "pending":
            assert unit.kinds in ((), ("cancelled",)), unit  # cut off once, or never started
        else:
            assert "cancelled" not in unit.kinds, unit
    assert_consistent(before)

    resumed = await run_runner("run", "--resume", "latest", *db, "--report", "-", cwd=tmp_path, within=30)
    assert resumed.process.returncode == 0, resumed.stderr
    assert summary_run_id(resumed) == run_id
    assert await trio.to_thread.run_sync(state.run_status, run_id) == "finished"
    after = await trio.to_thread.run_sync(state.units, run_id)
    for key, unit in after.items():  # units never started before get exactly one new attempt
        if before[key].status == "pending" and not before[key].kinds:
            assert unit.kinds == (None,), unit
    assert_resumed_exactly(before, after)


async def test_sigkill_leaves_a_consistent_db_and_resume_reruns_exactly_the_rest(
    tmp_path: Path, sqlite_db: Database, nursery: trio.Nursery
) -> None:
    """After kill -9 every stored result is whole, and --resume RUN re-runs only units without one."""
    state = RunState(sqlite_db)
    job = write_job(tmp_path, SLOW_JOB)
    db = ["--db", sqlite_db.url]
    process = await start_runner(nursery, "run", str(job), *db, "--report", "-", cwd=tmp_path)
    await wait_for(lambda: state.done() >= 8, within=30)
    process.send_signal(signal.SIGKILL)
    assert await process.wait(within=10) == -signal.SIGKILL
    (run_id,) = await trio.to_thread.run_sync(state.run_ids)
    assert await trio.to_thread.run_sync(state.run_status, run_id) == "running"  # nobody marked it
    before = await trio.to_thread.run_sync(state.units, run_id)
    assert_consistent(before)
    statuses = [u.status for u in before.values()]
    assert statuses.count("running") > 0  # leases of the dead process, not expired yet
    assert 8 <= statuses.count("ok") < 40
    assert all(u.attempts == (1 if u.status == "ok" else 0) for u in before.values())

    # resume_run takes the dead process's units back at once, without waiting out their leases.
    resumed = await run_runner("run", "--resume", run_id, *db, "--report", "-", cwd=tmp_path, within=30)
    assert resumed.process.returncode == 0, resumed.stderr
    after = await trio.to_thread.run_sync(state.units, run_id)
    assert_resumed_exactly(before, after)


@pytest.mark.postgres
async def test_two_processes_join_one_run_on_postgresql(
    tmp_path: Path, pg_database: Database, nursery: trio.Nursery
) -> None:
    """A second process that --joins a running run shares its units: each done exactly once, both exit 0."""
    state = RunState(pg_database)
    job = write_job(
        tmp_path,
        SLOW_JOB.replace("repeats = 40", "repeats = 60").replace("concurrency = 4", "concurrency = 3"),
    )
    db = ["--db", pg_database.url, "--report", "-"]
    first = await start_runner(nursery, "run", str(job), *db, cwd=tmp_path)
    await wait_for(lambda: bool(state.run_ids()), within=30)
    (run_id,) = await trio.to_thread.run_sync(state.run_ids)
    second = await start_runner(nursery, "run", "--join", run_id, *db, cwd=tmp_path)
    assert await first.wait(within=45) == 0, first.stderr
    assert await second.wait(within=45) == 0, second.stderr
    units = await trio.to_thread.run_sync(state.units, run_id)
    assert len(units) == 60
    assert all((u.status, u.attempts, u.results) == ("ok", 1, 1) for u in units.values()), units
    # Each process's last progress line counts the whole run, then the units it finished itself.
    done_here = [int(re.findall(r"this process: ok (\d+) failed", p.stderr)[-1]) for p in (first, second)]
    assert sum(done_here) == 60
    assert min(done_here) >= 1, done_here


BUDGET_JOB = f"""
name = "budget"
max_cost_usd = 6.0
[defaults]
repeats = 30
{RETRY}
[[providers]]
name = "sim"
dialect = "openai-chat"
model = "sim-model"
concurrency = 2
params = {{ stream_options = {{ include_usage = true }} }}
[providers.simulator]
# usage.cost at $0.1 a token: a unit costs $2.50, so the $6 cap is reached by the third unit done.
cost = true
price = {{ input = 100000, output = 100000 }}
latency = "ttft=0.05"
output_tokens = "10"

[[cases]]
id = "c"
prompt = "Say something."
"""


async def test_budget_stops_the_run_and_resume_with_a_higher_cap_finishes(
    tmp_path: Path, sqlite_db: Database
) -> None:
    """max_cost_usd stops starting units (exit 130, the rest pending); --resume --max-cost higher finishes."""
    state = RunState(sqlite_db)
    job = write_job(tmp_path, BUDGET_JOB)
    db = ["--db", sqlite_db.url, "--report", "-"]
    stopped = await run_runner("run", str(job), *db, cwd=tmp_path)
    assert stopped.process.returncode == 130, stopped.stderr
    run_id = summary_run_id(stopped)
    assert await trio.to_thread.run_sync(state.run_status, run_id) == "interrupted"
    before = await trio.to_thread.run_sync(state.units, run_id)
    statuses = [u.status for u in before.values()]
    assert statuses.count("running") == 0
    assert 3 <= statuses.count("ok") <= 6, statuses  # the units in flight when the cap is hit finish
    assert statuses.count("pending") >= 20
    # Units not started stay pending and untouched; the budget stops no attempt halfway.
    assert all(u.attempts == 0 for u in before.values() if u.status == "pending")
    assert all(u.kinds == (None,) for u in before.values() if u.status == "ok")
    spent = float(re.findall(r"spent \$([\d.]+)", stopped.stderr)[-1])
    assert spent >= 6.0

    # The stored job's cap still holds on resume: nothing more is started.
    again = await run_runner("run", "--resume", run_id, *db, cwd=tmp_path)
    assert again.process.returncode == 130, again.stderr
    assert await trio.to_thread.run_sync(state.units, run_id) == before

    finished = await run_runner("run", "--resume", run_id, "--max-cost", "1000", *db, cwd=tmp_path)
    assert finished.process.returncode == 0, finished.stderr
    assert_resumed_exactly(before, await trio.to_thread.run_sync(state.units, run_id))


def loopback_job(
    name: str,
    providers: list[tuple[str, str, dict[str, str]]],
    *,
    repeats: int,
    api_key_env: str | None = None,
) -> str:
    """A job of non-simulated providers (name, base_url, headers) with two cases."""
    tables = []
    for provider, base_url, headers in providers:
        lines = [
            "[[providers]]",
            f'name = "{provider}"',
            'dialect = "openai-chat"',
            f'base_url = "{base_url}"',
            f'model = "{provider}"',  # the simulator counts attempts per request body: one per provider
            "concurrency = 4",
            "params = { stream_options = { include_usage = true } }",
        ]
        if api_key_env:
            lines.append(f'api_key_env = "{api_key_env}"')
        if headers:
            lines.append("headers = { " + ", ".join(f'"{k}" = "{v}"' for k, v in headers.items()) + " }")
        tables.append("\n".join(lines))
    cases = '[[cases]]\nid = "a"\nprompt = "Say a."\n\n[[cases]]\nid = "b"\nprompt = "Say b."\n'
    return (
        f'name = "{name}"\n[defaults]\nrepeats = {repeats}\n{RETRY}\n' + "\n\n".join(tables) + "\n\n" + cases
    )


async def test_reuse_copies_results_without_requests(
    tmp_path: Path, sqlite_db: Database, start_simulator: StartSimulator
) -> None:
    """A second run with --reuse copies every result, marks the units reused, and sends no request."""
    simulator = await start_simulator()
    state = RunState(sqlite_db)
    job = write_job(
        tmp_path, loopback_job("reuse", [("sim", simulator.base_url("openai-chat"), {})], repeats=3)
    )
    db = ["--db", sqlite_db.url, "--report", "-"]
    first = await run_runner("run", str(job), *db, cwd=tmp_path)
    assert first.process.returncode == 0, first.stderr
    assert len(simulator.log) == 6
    assert "units reused 0, sent 6" in first.stderr
    second = await run_runner("run", str(job), "--reuse", *db, cwd=tmp_path)
    assert second.process.returncode == 0, second.stderr
    assert len(simulator.log) == 6  # not one request for the reused units
    assert "units reused 6, sent 0" in second.stderr  # the end-of-run summary line
    reused = await trio.to_thread.run_sync(state.units, summary_run_id(second))
    assert len(reused) == 6
    assert all((u.status, u.attempts, u.results) == ("ok", 0, 1) for u in reused.values()), reused
    assert all(u.reused_from is not None for u in reused.values())
    # Each repeat its own sample: the three repeats of a case never share one.
    assert len({u.reused_from for u in reused.values()}) == 6


KEY = "sk-test-LEAKCHECK-0123456789"


async def test_api_key_reaches_the_server_and_nothing_else(
    tmp_path: Path, sqlite_db: Database, start_simulator: StartSimulator, nursery: trio.Nursery
) -> None:
    """The key is sent to the provider but appears in no database file, export, report or output."""
    simulator = await start_simulator()
    tap: Tap = await nursery.start(serve_tap, simulator.port)
    base_url = f"{tap.origin}/v1"
    providers = [
        ("steady", base_url, {}),
        ("flaky", base_url, {"x-sim-faults": "1=http_500,2=close_abrupt:2"}),  # ok on attempt 3
        ("denied", base_url, {"x-sim-faults": "http_401@1"}),  # auth_error: the unit fails
    ]
    job = write_job(tmp_path, loopback_job("leak", providers, repeats=1, api_key_env="RUNNER_TEST_KEY"))
    env = runner_env(RUNNER_TEST_KEY=KEY)
    db = ["--db", sqlite_db.url]
    report = tmp_path / "report.html"
    run = await run_runner(
        "run", str(job), *db, "--capture", "all", "--report", str(report), cwd=tmp_path, env=env
    )
    assert run.process.returncode == 1, run.stderr  # the denied provider's units failed
    outputs = [run]
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"export.{fmt}"
        outputs.append(
            await run_runner(
                "export", "latest", *db, "--format", fmt, "--out", str(out), cwd=tmp_path, env=env
            )
        )
        assert outputs[-1].process.returncode == 0, outputs[-1].stderr
    outputs.append(await run_runner("export", "latest", *db, cwd=tmp_path, env=env))  # to stdout
    run_id = summary_run_id(run)
    units = await trio.to_thread.run_sync(RunState(sqlite_db).units, run_id)
    kinds = {key.split("/")[0]: unit.kinds for key, unit in units.items()}
    assert kinds == {
        "steady": (None,),
        "flaky": ("server_error", "early_close", None),
        "denied": ("auth_error",),
    }

    # The server did receive it, on every request (a check that can fail, unlike the simulator's log).
    received = bytes(tap.received)
    auth_lines = [line for line in received.split(b"\r\n") if line.lower().startswith(b"authorization:")]
    assert len(auth_lines) == len(simulator.log) == 2 * (1 + 3 + 1)  # two cases
    assert all(line.endswith(b"Bearer " + KEY.encode()) for line in auth_lines)

    sqlite_db.close()  # let SQLite checkpoint, so the file scan below sees everything committed
    files = [
        tmp_path / name
        for name in ("runner.db", "runner.db-wal", "runner.db-shm", "export.jsonl", "export.csv")
    ]
    files.append(report)
    blobs = {str(path): path.read_bytes() for path in files if path.exists()}
    assert str(tmp_path / "runner.db") in blobs
    assert str(report) in blobs
    for process in outputs:
        blobs[f"stdout of {process.process.args!r}"] = bytes(process.out)
        blobs[f"stderr of {process.process.args!r}"] = bytes(process.err)
    for index, body in enumerate(await trio.to_thread.run_sync(RunState(sqlite_db).raw_captures)):
        blobs[f"raw capture {index}"] = body
    assert len(blobs) > 10
    key = KEY.encode()
    leaks = [name for name, data in blobs.items() if key in data or key in _maybe_inflate(data)]
    assert leaks == []


def _maybe_inflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:
        return b""


async def _peak_rss_after(tmp_path: Path, units: int, nursery: trio.Nursery) -> tuple[int, int]:
    """Run a ``units``-unit job until 300 units are done; its peak RSS (KiB) and most units claimed."""
    url = f"sqlite:///{tmp_path / f'big-{units}.db'}"
    with open_database(url) as database:
        state = RunState(database)
        job = write_job(tmp_path, repeats_job("big", units), f"big-{units}.toml")
        process = await start_runner(nursery, "run", str(job), "--db", url, "--report", "-", cwd=tmp_path)
        most_running = 0

        def progressed() -> bool:
            nonlocal most_running
            most_running = max(most_running, state.running())
            return state.done() >= 300

        # A bound, not a measurement: planning 100k units alone took over 30 s on a loaded 2-core machine.
        await wait_for(progressed, within=120, interval=0.02)
        rss = process.peak_rss_kib()
        process.send_signal(signal.SIGINT)
        assert await process.wait(within=15) == 130, process.stderr
        assert await trio.to_thread.run_sync(state.running) == 0
    return rss, most_running


async def test_memory_stays_flat_for_100k_units(tmp_path: Path, nursery: trio.Nursery) -> None:
    """A 100,000-unit run peaks no higher than a 10,000-unit one, and never claims more than a slice."""
    small_rss, small_running = await _peak_rss_after(tmp_path, 10_000, nursery)
    big_rss, big_running = await _peak_rss_after(tmp_path, 100_000, nursery)
    # One object per planned unit would cost far more than 90,000 x 200 bytes = 18 MB.
    assert big_rss - small_rss < 15 * 1024, (small_rss, big_rss)
    # Units are claimed only as slots free up: 8 in flight, plus finished ones the writer has not
    # committed yet (they stay 'running' until then), never the whole run.
    assert max(small_running, big_running) < 500, (small_running, big_running)
