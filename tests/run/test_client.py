"""The run's client: runner's transport by default, stock httpx for --transport httpx or a provider's key."""

from __future__ import annotations

import httpx
import trio

from runner.run.client import build_client
from runner.spec import ProviderSpec, TransportName
from tests.fakes.scripted_http import ScriptedServer, json_response


async def _carrier(client: httpx.AsyncClient, url: str) -> str:
    """Which transport answered: httpcore puts its network stream in the response's extensions."""
    response = await client.get(url)
    assert response.status_code == 200
    return "httpx" if "network_stream" in response.extensions else "runner"


def _provider(name: str, server: ScriptedServer, transport: TransportName = "runner") -> ProviderSpec:
    return ProviderSpec(
        name=name, dialect="openai-chat", base_url=f"{server.base_url}/v1", model="m", transport=transport
    )


async def test_runner_transport_by_default_and_httpx_on_request() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(ScriptedServer([json_response(200, b"{}") for _ in range(2)]).serve)
        providers = [_provider("p", server)]
        async with build_client(providers, cap=4, transport="runner") as client:
            assert await _carrier(client, f"{server.base_url}/v1/x") == "runner"
        async with build_client(providers, cap=4, transport="httpx") as client:
            assert await _carrier(client, f"{server.base_url}/v1/x") == "httpx"
        nursery.cancel_scope.cancel()


async def test_a_providers_transport_key_applies_to_its_origin_only() -> None:
    async with trio.open_nursery() as nursery:
        plain = await nursery.start(ScriptedServer([json_response(200, b"{}")]).serve)
        fallback = await nursery.start(ScriptedServer([json_response(200, b"{}")]).serve)
        providers = [_provider("a", plain), _provider("b", fallback, transport="httpx")]
        async with build_client(providers, cap=4, transport="runner") as client:
            assert await _carrier(client, f"{plain.base_url}/v1/x") == "runner"
            assert await _carrier(client, f"{fallback.base_url}/v1/x") == "httpx"
        nursery.cancel_scope.cancel()
