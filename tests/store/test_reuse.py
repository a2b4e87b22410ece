"""``--reuse`` in the repository on both backends: which earlier sample each unit copies, in batches,
planned again, and by two planners at once; the copy graded by the grader it is given."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from runner.grading.assertions import AssertionOutcome
from runner.job.plan import Unit
from runner.store import repository
from runner.store.records import ReusedSample, UnitFinish

from .factories import make_completion, make_job, ok_attempt

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from runner.store.db import Database
    from runner.store.records import ClaimedUnit

LEASE = 30.0


def earlier_samples(session: Session, count: int) -> list[ClaimedUnit]:
    """A run whose ``count`` repeats of one request ended ok, answering ``sample N``; its units."""
    run = repository.create_run(session, make_job(), host="h", version="v")
    repository.add_units(session, run.id, repeats(count))
    samples = repository.claim_units(session, run.id, "w", limit=count, lease_seconds=LEASE)
    stale = AssertionOutcome(name="contains", passed=True, detail="graded by the old job")
    repository.write_batch(
        session,
        [
            UnitFinish(
                unit_id=u.id,
                owner="w",
                status="ok",
                attempt=ok_attempt(u.key, completion=make_completion(f"sample {u.repeat}")),
                assertions=(stale,),
            )
            for u in samples
        ],
    )
    return samples


def repeats(count: int, *, start: int = 1) -> list[Unit]:
    """Repeats ``start`` .. ``start + count - 1`` of one case: units of one request."""
    return [
        Unit(key=f"mini/c/{n}", provider="mini", case_id="c", repeat=n, request_hash="r" * 64)
        for n in range(start, start + count)
    ]


def test_reuse_gives_each_repeat_its_own_sample_across_batches(session: Session) -> None:
    """Repeat n takes the n-th earlier sample even when planned in two batches and planned again."""
    samples = earlier_samples(session, 3)
    graded: list[ReusedSample] = []

    def grade(sample: ReusedSample) -> tuple[AssertionOutcome, ...]:
        graded.append(sample)
        assert sample.completion is not None
        return (AssertionOutcome(name="equals", passed=False, detail=sample.completion.choices[0].text),)

    run = repository.create_run(session, make_job(), host="h", version="v")
    units = repeats(4)  # one repeat more than there are samples
    assert repository.add_units(session, run.id, units[:2], reuse=grade) == 2
    assert repository.add_units(session, run.id, units[2:], reuse=grade) == 1
    assert repository.add_units(session, run.id, units, reuse=grade) == 0  # planned again: no change
    views = list(repository.iter_units(session, run.id))
    assert [v.reused_from for v in views] == [u.id for u in samples] + [None]
    assert [v.completion.choices[0].text if v.completion else None for v in views] == [
        "sample 1",
        "sample 2",
        "sample 3",
        None,
    ]
    assert [[o.detail for o in v.assertions] for v in views] == [["sample 1"], ["sample 2"], ["sample 3"], []]
    assert views[3].status == "pending"
    timing = ok_attempt("k").timing
    assert [(s.case_id, s.ttft_s, s.duration_s) for s in graded] == [("c", timing.ttft_s, timing.end_s)] * 3
    assert all(s.cost_usd > 0 for s in graded)


def test_two_planners_of_one_run_never_copy_a_sample_twice(db: Database) -> None:
    """Two processes finishing one run's planning at once (``--join``): every unit gets one copy, once.

    The first planner's grader waits for the second to reach its own grading; on PostgreSQL the second
    waits on the run's unit rows instead, so the first one's wait runs out and it commits first.
    """
    with db.session() as session:
        samples = earlier_samples(session, 3)
        run = repository.create_run(session, make_job(), host="h", version="v")
        repository.add_units(session, run.id, repeats(3))
    grading = threading.Barrier(2, timeout=1.0)
    counts: list[int] = []
    errors: list[BaseException] = []

    def grade(sample: ReusedSample) -> None:
        # Both planners grading at once would both copy the same samples. A broken barrier: the other
        # planner is waiting for this one's transaction, as it should.
        with contextlib.suppress(threading.BrokenBarrierError):
            grading.wait()

    def plan() -> None:
        try:
            with db.session() as session:
                counts.append(repository.add_units(session, run.id, repeats(3), reuse=grade))
        except BaseException as exc:
            errors.append(exc)

    planners = [threading.Thread(target=plan) for _ in range(2)]
    for planner in planners:
        planner.start()
    for planner in planners:
        planner.join(timeout=30)
    assert errors == []
    assert sorted(counts) == [0, 3]
    with db.session() as session:
        views = list(repository.iter_units(session, run.id))
    assert [v.reused_from for v in views] == [u.id for u in samples]
    assert [len(v.completion.choices) if v.completion else 0 for v in views] == [1, 1, 1]
