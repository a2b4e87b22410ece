"""The run's one ``httpx.AsyncClient``: runner's transport under it, stock httpx where asked.

runner.http carries http:// and https:// by default; ``runner run --transport httpx`` puts stock httpx
(httpcore) under every provider, and a provider's ``transport = "httpx"`` under its origin only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from runner.http import HttpTransport

if TYPE_CHECKING:
    from collections.abc import Iterable

    from runner.spec import ProviderSpec, TransportName


def build_client(
    providers: Iterable[ProviderSpec], *, cap: int, transport: TransportName
) -> httpx.AsyncClient:
    """One client for the run; ``cap`` connections per host (the engine never has more units in flight)."""
    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
    if transport == "httpx":
        return httpx.AsyncClient(limits=limits, follow_redirects=False)
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for provider in providers:
        if provider.transport == "httpx":
            url = httpx.URL(provider.base_url)
            origin = f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")
            mounts[origin] = httpx.AsyncHTTPTransport(limits=limits)
    return httpx.AsyncClient(
        transport=HttpTransport(max_connections_per_host=cap), mounts=mounts, follow_redirects=False
    )
