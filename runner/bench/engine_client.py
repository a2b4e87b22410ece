"""The ``runner`` client of ``runner bench``: the load run as a real job through the whole engine path.

One openai-chat provider at the simulator's URL, one case repeated N times, a temporary SQLite
database and the real writer: HTTP, SSE, dialect, retries layer, limits and storage, as
``runner run`` does it. Measured from opening the run (planning its units) to the run's end.
"""

from __future__ import annotations

import functools
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import trio

from runner.bench.load import EXTRA_EVENTS, MESSAGES, MODEL, TIMEOUT_S, ClientReport, Meter, expected_text
from runner.job.catalog import with_catalog_prices
from runner.run.planning import open_run
from runner.run.process import process_settings
from runner.run.service import RunOptions, execute_job
from runner.spec import CaseSpec, JobSpec, ProviderSpec, RetryPolicy, Timeouts
from runner.store import repository
from runner.store.db import open_database
from runner.wire.dialects import get_dialect

if TYPE_CHECKING:
    from runner.spec import TransportName
    from runner.store.records import UnitView


def bench_job(port: int, streams: int, concurrency: int) -> JobSpec:
    """The bench load as a job: ``streams`` repeats of one case against the simulator."""
    provider = ProviderSpec(
        name="bench",
        dialect="openai-chat",
        base_url=f"http://127.0.0.1:{port}/v1",
        model=MODEL,
        concurrency=concurrency,
        # One attempt: a retry would hide a failed stream from the bench's count.
        retry=RetryPolicy(max_attempts=1),
        timeouts=Timeouts(
            connect=TIMEOUT_S, first_byte=TIMEOUT_S, first_token=TIMEOUT_S, idle=TIMEOUT_S, total=TIMEOUT_S
        ),
    )
    case = CaseSpec(id="bench", messages=tuple(dict(message) for message in MESSAGES))
    return JobSpec(name="bench", providers=(provider,), cases=(case,), repeats=streams, source_sha256="bench")


def run_runner(
    port: int, streams: int, chunks: int, concurrency: int, *, transport: TransportName = "runner"
) -> ClientReport:
    """Run the load through ``open_run`` + ``execute_job`` and check every stored result.

    ``transport`` is ``runner run --transport``: runner's own under httpx, or stock httpx.
    """
    name = "runner" if transport == "runner" else f"runner ({transport})"
    report = ClientReport(client=name, streams=streams)
    job = bench_job(port, streams, concurrency)
    provider, case = job.providers[0], job.cases[0]
    body = orjson.loads(get_dialect("openai-chat").build_request(provider, case, api_key=None).body)
    want_text = expected_text(body, chunks)
    # The same settings `runner run --quiet --concurrency C` uses (raw capture of failed attempts).
    options = RunOptions(display="quiet", concurrency=concurrency, transport=transport)
    # open_run looks the provider's price up in the catalog, whose first use imports genai-prices
    # (pydantic, httpx2: ~0.1 s of CPU, 2 us a chunk of the slow load). A lookup now keeps that import
    # out of the meter, like every other import; the lookup in open_run still runs, and is measured.
    with_catalog_prices(job, at=datetime.now(UTC))
    with (
        tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp,
        open_database(f"sqlite:///{Path(tmp) / 'bench.db'}") as database,
    ):
        meter = Meter.start()
        run, job = open_run(database, job, options)
        with process_settings():  # as `runner run` runs it
            trio.run(functools.partial(execute_job, database, run, job, options, api_keys={}))
        report.cpu_s, report.wall_s = meter.stop()
        with database.session() as session:
            for unit in repository.iter_units(session, run.id):
                _check_unit(report, unit, want_text, chunks)
    return report


def _check_unit(report: ClientReport, unit: UnitView, want_text: str, chunks: int) -> None:
    completion = unit.completion
    if unit.status != "ok" or completion is None or not unit.attempts:
        error = unit.attempts[-1].error if unit.attempts else None
        report.fail(
            f"unit {unit.key}: {unit.status}" + (f" ({error.kind}: {error.message})" if error else "")
        )
        return
    # The stored event count covers every SSE event; the content chunks are all but the fixed few.
    content_chunks = unit.attempts[-1].chunks - EXTRA_EVENTS
    text = completion.choices[0].text if completion.choices else ""
    report.check(text, content_chunks, complete=completion.complete, want_text=want_text, want=chunks)
