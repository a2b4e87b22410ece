"""The run's client: runner's transport by default, stock httpx for --transport httpx or a provider's key."""

from __future__ import annotations

from functools import partial

import httpx
import pytest
import trio

from runner.run.client import RunClient, build_client
from runner.spec import ProviderSpec, TransportName
from tests.fakes.loopback import has_ipv6_loopback
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


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")
async def test_a_providers_transport_key_applies_to_an_ipv6_origin() -> None:
    """``transport = "httpx"`` on a provider at an IPv6 address mounts stock httpx on its origin."""

    async def answer(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await stream.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, answer, 0, host="::1"))
            base = f"http://[::1]:{listeners[0].socket.getsockname()[1]}"
            provider = ProviderSpec(
                name="v6", dialect="openai-chat", base_url=f"{base}/v1", model="m", transport="httpx"
            )
            async with build_client([provider], cap=4, transport="runner") as client:
                assert await _carrier(client, f"{base}/v1/x") == "httpx"
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "transport", [pytest.param("runner", id="runner"), pytest.param("httpx", id="httpx")]
)
async def test_a_cookie_the_server_sets_is_sent_back(transport: TransportName) -> None:
    """The jar skips responses without Set-Cookie, yet still keeps and returns a cookie that is set."""
    scripts = [
        json_response(200, b"{}"),
        json_response(200, b"{}", headers={"set-cookie": "__cf_bm=abc; Path=/"}),
        json_response(200, b"{}"),
    ]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(ScriptedServer(scripts).serve)
            async with build_client([], cap=4, transport=transport) as client:
                for _ in range(3):
                    assert (await client.post(f"{server.base_url}/v1/x", content=b"")).status_code == 200
                assert dict(client.cookies) == {"__cf_bm": "abc"}
            nursery.cancel_scope.cancel()
    heads = [request.partition(b"\r\n\r\n")[0].lower() for request in server.requests]
    assert [b"\r\ncookie: __cf_bm=abc" in head for head in heads] == [False, False, True]


async def test_each_url_is_parsed_once_and_requests_keep_their_own() -> None:
    """Requests to one URL string share one parsed ``httpx.URL``; another string gets its own."""
    async with build_client([], cap=4, transport="runner") as client:
        first = client.build_request("POST", "http://127.0.0.1:9/v1/chat/completions?a=%2F b")
        again = client.build_request("POST", "http://127.0.0.1:9/v1/chat/completions?a=%2F b")
        other = client.build_request("POST", "http://127.0.0.1:9/v1/messages")
    assert first.url._uri_reference is again.url._uri_reference  # parsed once, then shared
    assert first.url == httpx.URL("http://127.0.0.1:9/v1/chat/completions?a=%2F b")
    assert str(first.url) == "http://127.0.0.1:9/v1/chat/completions?a=%2F%20b"
    assert other.url == httpx.URL("http://127.0.0.1:9/v1/messages")


async def test_merged_headers_are_httpx_own_and_never_shared_between_requests() -> None:
    """A request's headers are what stock httpx sends, however often the same headers are reused."""
    headers = {"content-type": "application/json", "authorization": "Bearer k", "accept": "text/event-stream"}
    url = "http://127.0.0.1:9/v1/chat/completions"
    async with httpx.AsyncClient() as stock, build_client([], cap=4, transport="runner") as client:
        want = stock.build_request("POST", url, headers=headers, content=b"{}").headers.raw
        first = client.build_request("POST", url, headers=headers, content=b"{}")
        first.headers["x-changed"] = "by this request only"
        again = client.build_request("POST", url, headers=headers, content=b"{}")
        client.headers = {"user-agent": "other"}
        renewed = client.build_request("POST", url, headers=headers, content=b"{}")
    assert again.headers.raw == want
    assert renewed.headers["user-agent"] == "other"


@pytest.mark.parametrize(
    "transport", [pytest.param("runner", id="runner"), pytest.param("httpx", id="httpx")]
)
async def test_client_headers_changed_in_place_reach_the_next_request(transport: TransportName) -> None:
    """A key set on ``client.headers`` in place replaces the old one on the wire, as with stock httpx."""
    headers = {"content-type": "application/json"}
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(ScriptedServer([json_response(200, b"{}") for _ in range(3)]).serve)
            async with build_client([], cap=4, transport=transport) as client:
                client.headers["authorization"] = "Bearer old-key"
                await client.post(f"{server.base_url}/v1/x", headers=headers, content=b"{}")
                client.headers["authorization"] = "Bearer new-key"
                await client.post(f"{server.base_url}/v1/x", headers=headers, content=b"{}")
                del client.headers["authorization"]
                await client.post(f"{server.base_url}/v1/x", headers=headers, content=b"{}")
            nursery.cancel_scope.cancel()
    heads = [request.partition(b"\r\n\r\n")[0].lower() for request in server.requests]
    keys = [
        next((line for line in head.split(b"\r\n") if line.startswith(b"authorization")), None)
        for head in heads
    ]
    assert keys == [b"authorization: bearer old-key", b"authorization: bearer new-key", None]


def test_cookies_given_to_the_client_are_in_its_jar() -> None:
    """``RunClient(cookies=...)`` keeps them, as httpx's client would."""
    client = RunClient(cookies={"session": "s"})
    assert dict(client.cookies) == {"session": "s"}
    assert client.build_request("GET", "http://127.0.0.1:9/").headers["cookie"] == "session=s"
