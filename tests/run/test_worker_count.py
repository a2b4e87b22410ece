"""``--workers``: how many processes a value asks for (the processes themselves: test_workers.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.run.workers import WorkerPlan, concurrency_share, worker_count


def test_auto_is_one_worker_per_core_this_process_may_use() -> None:
    assert worker_count("auto") == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("text", "count"), [("1", 1), ("2", 2), ("16", 16)])
def test_a_number_is_that_many(text: str, count: int) -> None:
    assert worker_count(text) == count


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", ""])
def test_anything_else_is_refused_naming_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a number of workers \(1, 2, \.\.\. or auto\)"):
        worker_count(text)


@given(workers=st.integers(1, 64), extra=st.integers(0, 1000))
def test_concurrency_shares_add_up_to_the_cap_and_differ_by_one_at_most(workers: int, extra: int) -> None:
    """``--concurrency C --workers N``: the workers' shares add up to C, each at least 1."""
    total = workers + extra
    shares = [concurrency_share(total, workers, index) for index in range(1, workers + 1)]
    assert sum(shares) == total
    assert min(shares) >= 1
    assert max(shares) - min(shares) <= 1


def test_each_worker_gets_its_share_on_its_command_line() -> None:
    plan = WorkerPlan(count=3, argv=["run", "--join", "r"], env={}, concurrency=10)
    assert [plan.worker_argv(i)[-2:] for i in (1, 2, 3)] == [["--concurrency", n] for n in ("4", "3", "3")]
    assert WorkerPlan(count=3, argv=["run"], env={}).worker_argv(1) == ["run"]
