"""The shared-limit SQL on a real database (SQLite and PostgreSQL): slots counted across processes,
a dead process's slots freed when its heartbeat lapses, buckets refilled by elapsed time, the
adaptive limit halved once per congestion event, and the run's spend summed over its workers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.store import repository
from runner.store.repository import limits
from runner.store.repository.limits import ProviderBudget
from tests.store.factories import make_job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from runner.store.records import Take

LEASE = 60.0


def _run(session: Session) -> str:
    return repository.create_run(session, make_job(), host="h", version="t").id


def _take(
    session: Session, run_id: str, owner: str, budget: ProviderBudget, now: float, *, cap: float | None = None
) -> Take:
    return limits.take_slot(
        session, run_id, owner, budget, tokens=10, now=now, lease_seconds=LEASE, cap_usd=cap
    )


def _give(
    session: Session,
    run_id: str,
    owner: str,
    budget: ProviderBudget,
    now: float,
    *,
    outcome: tuple[bool, int] | None = None,
    cost: float = 0.0,
) -> None:
    limits.give_slot(
        session,
        run_id,
        owner,
        budget,
        token_correction=0.0,
        outcome=outcome,
        cost=cost,
        now=now,
        lease_seconds=LEASE,
        recover_after=2,
    )


def test_slots_are_counted_across_processes_and_lapse_with_a_dead_one(session: Session) -> None:
    run_id = _run(session)
    budget = ProviderBudget(provider="p", concurrency=2, rpm=None, tpm=None)
    assert _take(session, run_id, "a", budget, 100.0).granted
    assert _take(session, run_id, "b", budget, 100.0).granted
    refused = _take(session, run_id, "c", budget, 101.0)
    assert not refused.granted
    assert refused.wait_s > 0
    _give(session, run_id, "b", budget, 102.0)
    assert _take(session, run_id, "c", budget, 102.0).granted
    # "a" dies holding its slot: once its heartbeat lapses, the slot is free again.
    assert not _take(session, run_id, "b", budget, 100.0 + LEASE - 1).granted
    assert _take(session, run_id, "b", budget, 100.0 + LEASE + 1).granted


def test_the_rpm_bucket_refills_by_elapsed_time_for_everyone(session: Session) -> None:
    run_id = _run(session)
    budget = ProviderBudget(provider="p", concurrency=100, rpm=120, tpm=None)  # 2 a second, burst 2
    grants = [_take(session, run_id, owner, budget, 10.0).granted for owner in "abc"]
    assert grants == [True, True, False]
    late = _take(session, run_id, "c", budget, 10.0)
    assert late.wait_s == 0.5  # one token at 2 per second
    assert _take(session, run_id, "c", budget, 10.5).granted


def test_a_burst_of_429s_halves_the_shared_limit_once(session: Session) -> None:
    run_id = _run(session)
    budget = ProviderBudget(provider="p", concurrency=8, rpm=None, tpm=None)
    takes = [_take(session, run_id, owner, budget, 1.0) for owner in "abcd"]
    for owner, take in zip("abcd", takes, strict=True):
        _give(session, run_id, owner, budget, 2.0, outcome=(True, take.epoch))
    grants = [_take(session, run_id, str(n), budget, 3.0).granted for n in range(6)]
    assert grants == [True] * 4 + [False] * 2  # 8 // 2, not 8 // 16
    for n in range(4):  # recover_after=2: two successes in a row add one back
        _give(session, run_id, str(n), budget, 4.0, outcome=(False, 1))
    assert sum(_take(session, run_id, str(n), budget, 5.0).granted for n in range(8)) == 6


def test_the_spend_is_summed_over_workers_and_stops_takes_at_the_cap(session: Session) -> None:
    run_id = _run(session)
    budget = ProviderBudget(provider="p", concurrency=8, rpm=None, tpm=None)
    limits.check_in(session, run_id, "a", spent=(1.0, 0.5), now=1.0, expires=1.0 + LEASE)
    peers = limits.check_in(session, run_id, "b", spent=(1.4, 0.0), now=1.0, expires=1.0 + LEASE)
    assert (peers.solo, peers.shared) == (1, 0)
    assert _take(session, run_id, "b", budget, 2.0, cap=2.0).granted  # 1.0 before + a's 0.5
    _give(session, run_id, "b", budget, 2.0, cost=0.5)
    spent = _take(session, run_id, "b", budget, 3.0, cap=2.0)
    assert spent.budget_spent
    assert not spent.granted
