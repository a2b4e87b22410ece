"""What ``runner runs`` / ``runner show`` (and the viewer) show, read from the store: plain records.

``list_runs``, ``run_summary``, ``unit_detail`` and ``unit_stream`` each read through the repository in
a few short transactions; rendering is ``runner.report.terminal`` (text) and ``runner.report.jsonout`` (JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runner.errors import NotFoundError, RunnerError
from runner.job.stored import job_from_json, stored_dialect
from runner.report.run import describe_price, resume_hint, subset_note, timing_note
from runner.report.stats import percentile
from runner.store.repository import browse, failure_breakdown
from runner.store.repository.runs import SECRET_HEADER_WORDS
from runner.wire.dialects import get_dialect
from runner.wire.replay import events_by_read, parse_body

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.orm import Session

    from runner.model import Completion
    from runner.store.records import RunInfo, UnitView
    from runner.store.repository import ProviderFailures
    from runner.store.repository.browse import RunRow, UnitTally
    from runner.wire.events import ServerSentEvent


class UnknownUnitError(NotFoundError):
    """A unit key names no unit of the run; ``near`` holds the closest keys."""

    def __init__(self, message: str, *, run_id: str, key: str, near: tuple[str, ...]) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.key = key
        self.near = near


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSummary:
    """One provider of a run: its tally, price and latency percentiles (seconds; None: no sample)."""

    name: str
    tally: UnitTally
    price: str
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    duration_p50_s: float | None
    duration_p90_s: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """The top of a run's report: the run, its totals, each provider, what failed, and the notes."""

    run: RunInfo
    total: UnitTally
    providers: tuple[ProviderSummary, ...]
    failures: tuple[ProviderFailures, ...]
    wall_s: float | None  # start to finish (to now while running)
    notes: tuple[str, ...]  # resume hint, subset, lagging loop


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestView:
    """The request a unit sends, rebuilt from the run's stored job spec (without any key)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitDetail:
    """One unit as ``runner show RUN/UNIT`` shows it: the store's view, its request and dialect."""

    run: RunInfo
    unit: UnitView
    dialect: str | None
    request: RequestView | None  # None: the stored spec no longer rebuilds (an older runner's)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamRead:
    """One read of a captured body: where it starts, when it arrived, its bytes and the events it ended."""

    offset: int
    at_s: float | None  # seconds after the request; None when the read times were not stored
    data: bytes
    events: tuple[ServerSentEvent, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptStream:
    """An attempt's captured body replayed: read by read, and the completion it rebuilds."""

    number: int
    attempt_id: int
    http_status: int | None
    captured: bool
    reads: tuple[StreamRead, ...]
    completion: Completion | None  # None: not captured, or no dialect to read it with


def list_runs(session: Session, *, job_name: str | None = None, last: int = 20) -> list[RunRow]:
    """The ``last`` most recent runs (of ``job_name``), newest first, with unit verdicts and cost."""
    return browse.run_rows(session, job_name=job_name, limit=last)


def run_summary(session: Session, ref: str, *, now: datetime | None = None) -> RunSummary:
    """The summary of run ``ref`` (an id or ``latest``), aggregated in SQL.

    Raises:
        NotFoundError: no such run (the message names the closest ids).
    """
    run = browse.get_run_or_hint(session, ref)
    tallies = browse.provider_tallies(session, run.id)
    timings = browse.provider_timings(session, run.id)
    total = browse.combined(tallies.values())  # the run's: one set of grouped scans, not two
    spec_providers = {p.get("name"): p for p in run.job_spec.get("providers") or () if isinstance(p, dict)}
    providers = []
    for name, tally in tallies.items():
        timing = timings.get(name, browse.ProviderTimings())
        ttft, duration = timing.ttft_s, timing.duration_s
        providers.append(
            ProviderSummary(
                name=name,
                tally=tally,
                price=describe_price(run.prices.get(name), spec_providers.get(name, {}).get("price_source")),
                ttft_p50_s=percentile(ttft, 50),
                ttft_p90_s=percentile(ttft, 90),
                duration_p50_s=percentile(duration, 50),
                duration_p90_s=percentile(duration, 90),
            )
        )
    end = run.finished_at or (now or datetime.now(UTC))
    notes = (
        resume_hint(run.id, run.status, total.not_done),
        subset_note(run.job_spec),
        timing_note(run.loop_lag),
    )
    return RunSummary(
        run=run,
        total=total,
        providers=tuple(providers),
        failures=failure_breakdown(session, run.id),
        wall_s=max((end - run.started_at).total_seconds(), 0.0),
        notes=tuple(note for note in notes if note),
    )


def split_unit_ref(ref: str) -> tuple[str, str | None]:
    """``RUN`` or ``RUN/UNIT`` -> (run, unit key or None). The run id never holds a ``/``; the key may
    (a templated case's id is ``case/row``): it is everything after the first ``/``."""
    run, sep, key = ref.partition("/")
    return run, (key if sep else None)


def unit_detail(session: Session, run_ref: str, key: str) -> UnitDetail:
    """Unit ``key`` (``provider/case/repeat``; the case id may hold ``/``) of run ``run_ref``.

    Raises:
        NotFoundError: no such run.
        UnknownUnitError: no such unit (with the closest keys).
    """
    run = browse.get_run_or_hint(session, run_ref)
    unit = browse.find_unit(session, run.id, key)
    if unit is None:
        near = tuple(browse.similar_unit_keys(session, run.id, key))
        shape = "" if _is_unit_key(key) else " (a unit key is provider/case/repeat)"
        hint = f"; closest: {', '.join(near)}" if near else "; the run has no units"
        raise UnknownUnitError(
            f"run {run.id} has no unit {key!r}{shape}{hint}", run_id=run.id, key=key, near=near
        )
    return UnitDetail(
        run=run,
        unit=unit,
        dialect=stored_dialect(run.job_spec, unit.provider),
        request=_request(run.job_spec, unit),
    )


def unit_stream(
    session: Session, detail: UnitDetail, *, attempt: int | None = None
) -> tuple[AttemptStream, ...]:
    """The captured bodies of ``detail``'s unit (attempt number ``attempt`` only, if given), each
    replayed read by read (``runner.wire.replay``) with the time each read arrived when it was stored."""
    streams = []
    for stored in browse.attempt_bytes(session, detail.unit.id, attempt):
        reads: tuple[StreamRead, ...] = ()
        completion = None
        if stored.body is not None:
            times = stored.reads or ()
            offsets = [offset for offset, _ in times]
            reads = tuple(
                StreamRead(
                    offset=times[i][0] if times else 0,
                    at_s=times[i][1] if times else None,
                    data=data,
                    events=tuple(events),
                )
                for i, (data, events) in enumerate(events_by_read(stored.body, offsets))
            )
            if detail.dialect is not None:
                completion = parse_body(detail.dialect, stored.body, http_status=stored.http_status)
        streams.append(
            AttemptStream(
                number=stored.number,
                attempt_id=stored.attempt_id,
                http_status=stored.http_status,
                captured=stored.body is not None,
                reads=reads,
                completion=completion,
            )
        )
    return tuple(streams)


def _is_unit_key(key: str) -> bool:
    provider, _, rest = key.partition("/")
    case_id, _, repeat = rest.rpartition("/")
    return bool(provider and case_id and repeat.isdigit())


def _request(job_spec: Mapping[str, Any], unit: UnitView) -> RequestView | None:
    """The unit's request as its dialect builds it from the stored spec, with no key in it."""
    try:
        job = job_from_json(job_spec)
        provider = next(p for p in job.providers if p.name == unit.provider)
        case = next(c for c in job.cases if c.id == unit.case_id)
        request = get_dialect(provider.dialect).build_request(provider, case, api_key=None)
    except (StopIteration, TypeError, KeyError, ValueError, RunnerError):
        return None
    headers = {
        name: "<redacted>" if any(w in name.lower() for w in SECRET_HEADER_WORDS) else value
        for name, value in request.headers.items()
    }
    return RequestView(
        method=request.method,
        url=request.url,
        headers=headers,
        body=request.body.decode("utf-8", "replace"),
    )


__all__ = [
    "AttemptStream",
    "ProviderSummary",
    "RequestView",
    "RunSummary",
    "StreamRead",
    "UnitDetail",
    "UnknownUnitError",
    "list_runs",
    "run_summary",
    "split_unit_ref",
    "unit_detail",
    "unit_stream",
]
