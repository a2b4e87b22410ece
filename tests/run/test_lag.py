"""Loop lag: a fixed-size histogram of how late a periodic task woke, measured during every run."""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from runner.model import LoopLag
from runner.run.lag import THRESHOLD_S, LagHistogram, watch_loop_lag
from runner.run.planning import open_run
from runner.run.process import SWITCH_INTERVAL_S, run_until_signalled
from runner.run.service import RunOptions, execute_job
from runner.simulator.config import SimulatorConfig, parse_latency
from runner.spec import ProviderSpec, RetryPolicy, Timeouts
from runner.store import repository
from runner.store.db import Database, open_database
from runner.store.records import RunInfo
from tests.busyloop import hog
from tests.run.helpers import make_job, run_in_process


@pytest.mark.parametrize("spread", [pytest.param(1e-4, id="100us"), pytest.param(0.02, id="20ms")])
def test_quantiles_are_within_ten_percent_and_never_above_the_max(spread: float) -> None:
    """A quantile read off the buckets is at most 10% above the true one, and the max is exact."""
    histogram = LagHistogram()
    values = [spread * (n + 1) / 1000 for n in range(1000)]
    for value in values:
        histogram.record(value)
    for q, true in ((0.5, values[499]), (0.99, values[989])):
        assert true <= histogram.quantile(q) <= true * 1.1
    assert histogram.max == values[-1]
    assert histogram.quantile(1.0) == values[-1]


def test_memory_is_fixed_and_outliers_keep_the_exact_max() -> None:
    """A lag past the last bucket still counts, and the histogram never grows."""
    histogram = LagHistogram()
    size = histogram.buckets
    for value in (0.0, 1e-9, 500.0):
        histogram.record(value)
    assert histogram.buckets == size == 172
    assert histogram.quantile(0.99) == 500.0
    assert histogram.quantile(0.1) == 1e-5  # the first bucket's bound: lags are read to 10 us


def test_no_wake_up_no_summary() -> None:
    """A run shorter than one interval has no lag figures (None), not zeros."""
    assert LagHistogram().summary() is None


def test_the_summary_flags_a_lag_above_the_threshold() -> None:
    """Over 5 ms at p99 the summary says the timing figures include runner's own delay."""
    clean = LoopLag(p50_s=0.0002, p99_s=0.001, max_s=0.003, samples=100)
    lagging = LoopLag(p50_s=0.002, p99_s=0.040, max_s=0.120, samples=100)
    assert not clean.is_lagging
    assert clean.describe() == "loop lag p50 0.2 ms, p99 1.0 ms, max 3.0 ms"
    assert lagging.is_lagging
    flag = f"(over {THRESHOLD_S * 1000:g} ms at p99: TTFT and gap figures include up to 40 ms of runner's"
    assert flag + " own delay)" in lagging.describe()


@pytest.mark.parametrize(
    ("hog_s", "lagging"), [pytest.param(None, False, id="idle"), pytest.param(0.02, True, id="busy")]
)
async def test_the_watcher_sees_a_busy_loop(hog_s: float | None, lagging: bool) -> None:
    """20 ms task steps on the loop show up as lag; an idle loop wakes on time."""
    histogram = LagHistogram()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_loop_lag, histogram)
        if hog_s is not None:
            nursery.start_soon(hog, hog_s)
        await trio.sleep(0.3)
        nursery.cancel_scope.cancel()
    summary = histogram.summary()
    assert summary is not None
    assert summary.samples >= 5
    if lagging:
        assert summary.is_lagging
        assert summary.max_s >= 0.01
    else:
        assert summary.p50_s < THRESHOLD_S  # the median: one descheduled wake-up is no lag


async def test_a_closed_histogram_records_no_later_lag() -> None:
    """After the run's last attempt (close), a busy loop is no lag of the run: closing the client, its
    connections and the arrival watch's thread held the loop 10-40 ms at the end of every run, which
    was the p99 of a short run and flagged its timing figures."""
    histogram = LagHistogram()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_loop_lag, histogram)
        await trio.sleep(0.1)
        histogram.close()
        seen, worst = histogram.count, histogram.max
        nursery.start_soon(hog, 0.03)
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    assert seen >= 3
    assert (histogram.count, histogram.max) == (seen, worst)


def _simulated(**fields: Any) -> ProviderSpec:
    """A provider served by the run's own simulator (no address of its own), one attempt a unit."""
    return ProviderSpec(
        name="sim",
        dialect="openai-chat",
        base_url="http://simulated.invalid/v1",
        model="m",
        retry=RetryPolicy(max_attempts=1),
        **fields,
    )


async def test_every_run_measures_its_loop_lag(tmp_path: Path) -> None:
    """execute_job's summary carries the loop lag, and its line says it."""
    provider = _simulated(
        simulator=SimulatorConfig(latency=parse_latency("ttft=0.05")),
        timeouts=Timeouts(connect=5, first_byte=5, first_token=5, idle=5, total=10),
        concurrency=2,
    )
    with trio.fail_after(30):
        summary, units = await run_in_process(tmp_path, make_job([provider], repeats=4))
    assert [u.status for u in units] == ["ok"] * 4
    assert summary.loop_lag is not None
    assert summary.loop_lag.samples >= 5
    assert "; loop lag p50 " in summary.describe()


async def test_runner_run_freezes_the_startup_objects_out_of_the_collectors_reach(tmp_path: Path) -> None:
    """run_until_signalled (``runner run``'s) freezes what is alive before the run: no full GC pause
    walks the libraries' objects while attempts are being timed."""
    provider = _simulated(simulator=SimulatorConfig())
    options = RunOptions(display="quiet")
    database = await trio.to_thread.run_sync(open_database, f"sqlite:///{tmp_path / 'runner.db'}")
    try:
        run, job = await trio.to_thread.run_sync(open_run, database, make_job([provider]), options)
        gc.unfreeze()
        with trio.fail_after(30):
            summary = await run_until_signalled(database, run, job, options, api_keys={})
        assert gc.get_freeze_count() > 10_000
        assert summary is not None
        assert summary.status == "finished"
    finally:
        gc.unfreeze()  # this test process goes on: its objects stay collectable
        database.close()


async def test_runner_run_shortens_the_gil_switch_interval_while_it_runs(tmp_path: Path) -> None:
    """run_until_signalled hands the GIL on within SWITCH_INTERVAL_S while the run runs (the arrival watch
    thread must peek in time), and puts the process's own interval back afterwards."""
    provider = _simulated(simulator=SimulatorConfig(latency=parse_latency("ttft=0.05")))
    options = RunOptions(display="quiet")
    database = await trio.to_thread.run_sync(open_database, f"sqlite:///{tmp_path / 'runner.db'}")
    before = sys.getswitchinterval()
    seen: list[float] = []

    async def sample() -> None:
        while True:
            seen.append(sys.getswitchinterval())
            await trio.sleep(0.005)

    try:
        run, job = await trio.to_thread.run_sync(open_run, database, make_job([provider]), options)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sample)
                summary = await run_until_signalled(database, run, job, options, api_keys={})
                nursery.cancel_scope.cancel()
        assert summary is not None
        assert min(seen) == pytest.approx(SWITCH_INTERVAL_S)
        assert sys.getswitchinterval() == before
    finally:
        gc.unfreeze()  # run_until_signalled froze this test process's objects
        database.close()


async def test_every_run_stores_its_loop_lag(database: Database) -> None:
    """execute_job writes this process's lag with the run's final status; the read model has it."""
    provider = _simulated(simulator=SimulatorConfig(latency=parse_latency("ttft=0.05")), concurrency=2)
    options = RunOptions(display="quiet")
    run, job = await trio.to_thread.run_sync(open_run, database, make_job([provider], repeats=4), options)
    with trio.fail_after(30):
        summary = await execute_job(database, run, job, options, api_keys={})

    def read() -> RunInfo:
        with database.session() as session:
            return repository.get_run(session, run.id)

    stored = await trio.to_thread.run_sync(read)
    assert summary.loop_lag is not None
    assert stored.status == "finished"
    assert stored.loop_lag == summary.loop_lag  # the first process: its own figures, exactly
