"""Attempt-level stream rules of issue 10: the terminal signal after an error finish, pages that are
not event streams, bounded bodies and token-idle stalls, over a real loopback socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from runner.model import AttemptRecord
from runner.run.attempt import ERROR_GRACE_SECONDS, run_attempt
from runner.spec import CaseSpec, ProviderSpec, Timeouts
from runner.wire.dialects import get_dialect
from tests.fakes.scripted_http import ScriptedServer, Step, chunk, sse_response

CASE = CaseSpec(id="c", messages=({"role": "user", "content": "hi"},))
TIMEOUTS = Timeouts(connect=5, first_byte=10, first_token=20, idle=30, total=60)

_MIROMIND_ERROR = (
    b'data: {"id":"wf","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},'
    b'"finish_reason":"error"}],"error":{"message":"workflow failed","type":"workflow_error",'
    b'"code":"search_unavailable"}}\n\n'
)
_TEXT = (
    b'data: {"id":"wf","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """One httpx client, closed after the test."""
    async with httpx.AsyncClient() as c:
        yield c


async def attempt(
    client: httpx.AsyncClient,
    script: list[Step],
    *,
    dialect_name: str = "openai-chat",
    timeouts: Timeouts = TIMEOUTS,
) -> AttemptRecord:
    """Serve ``script`` on loopback and run one attempt of ``dialect_name`` against it."""
    dialect = get_dialect(dialect_name)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(ScriptedServer([script]).serve)
        provider = ProviderSpec(name="p", dialect=dialect_name, base_url=server.base_url, model="m")
        record = await run_attempt(
            client,
            dialect,
            dialect.build_request(provider, CASE, api_key="k"),
            unit_key="p/c/1",
            number=1,
            timeouts=timeouts,
        )
        nursery.cancel_scope.cancel()
    return record


async def test_error_finish_then_done_is_complete_with_the_error(client: httpx.AsyncClient) -> None:
    """MiroMind's error finish followed by [DONE]: complete (terminal signal seen), error set."""
    record = await attempt(client, sse_response(_TEXT, _MIROMIND_ERROR, b"data: [DONE]\n\n"))
    assert record.completion is not None
    assert record.completion.complete
    assert record.error is not None
    assert record.error.kind == "stream_error"
    assert "workflow failed" in record.error.message


async def test_a_stall_after_an_error_is_no_timeout(
    client: httpx.AsyncClient, autojump_clock: trio.abc.Clock
) -> None:
    """After an error finish, a stream that stalls is cut after a short grace and keeps its error."""
    head, *_ = sse_response()
    record = await attempt(client, [head, chunk(_TEXT), chunk(_MIROMIND_ERROR), 500.0])
    assert record.error is not None
    assert record.error.kind == "stream_error"
    assert record.completion is not None
    assert not record.completion.complete
    assert record.timing.end_s == pytest.approx(ERROR_GRACE_SECONDS, abs=0.05)
