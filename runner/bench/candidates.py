"""The transports `runner bench` compares under one httpx client: httpcore, httpcore2's pool, runner's.

httpcore2 (from httpx 2's line) is optional: the bench skips that candidate when it is not installed.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, Final

import httpx

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TRANSPORTS: Final = ("runner", "httpx", "httpcore2")


def is_available(transport: str) -> bool:
    """Whether ``transport`` can be built here (httpcore2 is not a dependency of runner)."""
    return transport != "httpcore2" or importlib.util.find_spec("httpcore2") is not None


def build_transport(transport: str, concurrency: int) -> httpx.AsyncBaseTransport:
    """One of ``TRANSPORTS``, sized for ``concurrency`` streams to one host."""
    if transport == "runner":
        from runner.http import HttpTransport

        return HttpTransport(max_connections_per_host=concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    if transport == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits)
    return _Httpcore2Transport(concurrency)


class _Httpcore2Stream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Httpcore2Transport(httpx.AsyncBaseTransport):
    """httpx over httpcore2's connection pool (what httpx.AsyncHTTPTransport does over httpcore)."""

    def __init__(self, concurrency: int) -> None:
        import httpcore2

        self._core: Any = httpcore2
        self._pool: Any = httpcore2.AsyncConnectionPool(
            max_connections=concurrency, max_keepalive_connections=concurrency
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core = self._core
        url = request.url
        response = await self._pool.handle_async_request(
            core.Request(
                method=request.method,
                url=core.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=_Httpcore2Stream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
