"""One attempt of a dialect against a scripted loopback server: the set-up the attempt-level tests share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from runner.run.attempt import run_attempt
from runner.spec import DEFAULT_MAX_RESPONSE_BYTES, CaseSpec, ProviderSpec, Timeouts
from runner.wire.dialects import get_dialect
from tests.fakes.scripted_http import ScriptedServer

if TYPE_CHECKING:
    import httpx

    from runner.model import AttemptRecord
    from tests.fakes.scripted_http import Step

CASE = CaseSpec(id="c", messages=({"role": "user", "content": "hi"},))
TIMEOUTS = Timeouts(connect=5, first_byte=10, first_token=20, idle=30, total=60)


async def attempt_on_script(
    client: httpx.AsyncClient,
    script: list[Step],
    *,
    dialect_name: str = "openai-chat",
    timeouts: Timeouts = TIMEOUTS,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> AttemptRecord:
    """Serve ``script`` on loopback and run one attempt of ``dialect_name`` against it (bounded by the
    attempt's own total timeout, plus a margin, so a broken test cannot hang)."""
    dialect = get_dialect(dialect_name)
    with trio.fail_after(timeouts.total + 10):
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
                max_response_bytes=max_response_bytes,
            )
            nursery.cancel_scope.cancel()
    return record
