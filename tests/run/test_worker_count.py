"""``--workers``: how many processes a value asks for (the processes themselves: test_workers.py)."""

from __future__ import annotations

import os

import pytest

from runner.run.workers import worker_count


def test_auto_is_one_worker_per_core_this_process_may_use() -> None:
    assert worker_count("auto") == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("text", "count"), [("1", 1), ("2", 2), ("16", 16)])
def test_a_number_is_that_many(text: str, count: int) -> None:
    assert worker_count(text) == count


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", ""])
def test_anything_else_is_refused_naming_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a number of workers \(1, 2, \.\.\. or auto\)"):
        worker_count(text)
