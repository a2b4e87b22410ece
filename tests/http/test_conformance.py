"""runner's transport against stock httpx on the corpus: the same status, headers and body, or the same error.

One exception, by design: runner's transport decodes gzip / deflate itself (in bounded steps) and hands
httpx the decoded body without Content-Encoding and Content-Length, so httpx does not decode it twice;
for those responses the comparison leaves out those two headers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import trio

from runner.http import HttpTransport
from runner.run.attempt import run_attempt
from runner.spec import CaseSpec, ProviderSpec, Timeouts
from runner.wire.dialects import get_dialect
from tests.http.corpus import SCENARIOS, CorpusServer

Outcome = tuple[object, ...]
TRANSPORTS: dict[str, Callable[[], httpx.AsyncBaseTransport]] = {
    "runner": HttpTransport,
    "httpx": httpx.AsyncHTTPTransport,
}
ENCODED = frozenset({"gzip-length", "gzip-chunked", "deflate", "deflate-raw-late", "bad-gzip"})
# httpx's aiter_bytes leaves httpcore's generators to trio's system task after a DecodingError.
# run/stream.py stops reading mid-body: httpx's iterators are left to trio's finalizer too.
ABANDONED = pytest.mark.filterwarnings("ignore:Async generator 'http:ResourceWarning")


@pytest.fixture
async def corpus() -> AsyncIterator[CorpusServer]:
    async with trio.open_nursery() as nursery:
        yield await nursery.start(CorpusServer().serve)
        nursery.cancel_scope.cancel()


async def outcome(client: httpx.AsyncClient, url: str, *, method: str = "GET") -> Outcome:
    """What a client makes of one response: everything httpx exposes, or the exception's class."""
    try:
        with trio.fail_after(10):
            async with client.stream(method, url) as response:
                body = b"".join([part async for part in response.aiter_bytes()])
    except httpx.HTTPError as exc:
        return ("error", type(exc).__name__)
    headers = response.headers.multi_items()
    if url.rsplit("/", 1)[-1] in ENCODED:
        headers = [(k, v) for k, v in headers if k not in ("content-encoding", "content-length")]
    return ("ok", response.status_code, response.reason_phrase, response.http_version, headers, body)


async def both(corpus: CorpusServer, name: str, *, method: str = "GET") -> dict[str, Outcome]:
    """Each transport's outcome for one request of scenario ``name``."""
    results: dict[str, Outcome] = {}
    for label, make in TRANSPORTS.items():
        async with httpx.AsyncClient(transport=make()) as client:
            results[label] = await outcome(client, corpus.url(name), method=method)
    return results


@ABANDONED
@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "keep-alive-closed"])
async def test_runner_and_httpx_agree(corpus: CorpusServer, name: str) -> None:
    results = await both(corpus, name)
    assert results["runner"] == results["httpx"]


def test_the_corpus_has_successes_and_each_failure_kind() -> None:
    """The agreement above means something: the corpus holds answers and errors of several classes."""

    async def collect() -> set[object]:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(CorpusServer().serve)
            kinds = set()
            async with httpx.AsyncClient(transport=HttpTransport()) as client:
                for name in SCENARIOS:
                    result = await outcome(client, server.url(name))
                    kinds.add(result[1] if result[0] == "error" else "ok")
            nursery.cancel_scope.cancel()
        return kinds

    kinds = trio.run(collect)
    assert {"ok", "ReadError", "RemoteProtocolError", "DecodingError"} <= kinds


async def test_head_requests_have_no_body(corpus: CorpusServer) -> None:
    results = await both(corpus, "content-length", method="HEAD")
    assert results["runner"] == results["httpx"]
    assert results["runner"][-1] == b""


async def test_an_idle_connection_the_server_closed_is_not_used_again(corpus: CorpusServer) -> None:
    """The server closes a keep-alive connection while it is idle: the next request goes on a fresh one."""
    counts = {}
    results: dict[str, list[Outcome]] = {}
    for label, make in TRANSPORTS.items():
        before = corpus.connections
        async with httpx.AsyncClient(transport=make()) as client:
            results[label] = []
            for _ in range(3):
                results[label].append(await outcome(client, corpus.url("keep-alive-closed")))
                await trio.sleep(0.1)  # the server's close arrives while the connection is idle
        counts[label] = corpus.connections - before
    assert results["runner"] == results["httpx"]
    assert all(r[0] == "ok" for r in results["runner"])
    assert counts == {"runner": 3, "httpx": 3}


async def test_keep_alive_reuses_one_connection(corpus: CorpusServer) -> None:
    before = corpus.connections
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        for name in ("content-length", "odd-chunks", "gzip-chunked", "trailers", "continue", "no-content"):
            assert (await outcome(client, corpus.url(name)))[0] == "ok"
    assert corpus.connections - before == 1


@ABANDONED
@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_a_response_past_max_response_bytes_fails_alike(corpus: CorpusServer, transport: str) -> None:
    """A 5 MB body against a 1 MB bound: response_too_large through either transport."""
    provider = ProviderSpec(name="p", dialect="openai-chat", base_url=corpus.url("large-chunked"), model="m")
    dialect = get_dialect("openai-chat")
    request = dialect.build_request(provider, CaseSpec(id="c", messages=()), api_key=None)
    request = dataclasses.replace(request, url=corpus.url("large-chunked"))
    async with httpx.AsyncClient(transport=TRANSPORTS[transport]()) as client:
        record = await run_attempt(
            client,
            dialect,
            request,
            unit_key="p/c/0",
            number=1,
            timeouts=Timeouts(connect=5, first_byte=5, first_token=5, idle=5, total=10),
            max_response_bytes=1_000_000,
        )
    assert record.error is not None
    assert record.error.kind == "response_too_large"
