"""The run's one ``httpx.AsyncClient``: runner's transport under it, stock httpx where asked.

runner.http carries http:// and https:// by default; ``runner run --transport httpx`` puts stock httpx
(httpcore) under every provider, and a provider's ``transport = "httpx"`` under its origin only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import httpx

from runner.http import HttpTransport

if TYPE_CHECKING:
    from collections.abc import Iterable
    from http.cookiejar import CookieJar

    from runner.spec import ProviderSpec, TransportName

# A run sends to a handful of URLs and header sets (one per provider, or per provider and model):
# far fewer than this. The bound only keeps a run whose requests all differ from growing the caches.
CACHE_ENTRIES: Final = 1024


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, minus its per-response work when the response sets no cookie."""

    def extract_cookies(self, response: httpx.Response) -> None:
        # httpx builds two urllib compatibility objects per response before the CookieJar finds no
        # Set-Cookie header (~10 us a request, 5% of a short stream's CPU in `runner bench`). With
        # neither header the jar would not change, so skipping is exactly httpx's behaviour; a
        # provider behind a CDN that does set cookies (Cloudflare's __cf_bm) still gets them back.
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class RunClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` that parses each distinct request URL, and merges each distinct set of
    request headers with its own, once per run.

    The engine sends every attempt of a provider to the same URL string with the same headers;
    httpx parses and percent-quotes the URL (~12% of a short stream's CPU in `runner bench`) and
    normalizes and merges the headers (~8 us) on every request. An ``httpx.URL`` is immutable, so
    one parsed copy serves them all; the merged ``httpx.Headers`` is copied by every ``Request``
    that receives it (``Headers(headers)``), so requests never share, or change, the cached one.
    """

    def __init__(self, **kwargs: Any) -> None:
        cookies = kwargs.pop("cookies", None)  # into our jar: httpx's own is never read (``cookies``)
        super().__init__(**kwargs)
        self._urls: dict[str, httpx.URL] = {}
        self._jar: httpx.Cookies = _Cookies(cookies)
        # Keyed by the request's header items; valid for one set of client headers: a new one
        # assigned to ``headers``, or the same one changed in place (``client.headers[k] = v``, a new
        # API key), empties it. Comparing the raw items costs ~0.3 us; a stale key would be sent.
        self._merged: dict[tuple[Any, ...], Any] = {}  # request header items -> merged httpx.Headers
        self._merged_with = self.headers
        self._merged_raw = self.headers.raw

    @property
    def cookies(self) -> httpx.Cookies:
        return self._jar

    @cookies.setter
    def cookies(self, cookies: httpx.Cookies | CookieJar | dict[str, str] | list[tuple[str, str]]) -> None:
        self._jar = _Cookies(cookies)

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        if isinstance(url, str):
            parsed = self._urls.get(url)
            if parsed is None:
                if len(self._urls) >= CACHE_ENTRIES:
                    self._urls.clear()
                parsed = self._urls[url] = httpx.URL(url)
            url = parsed
        return super().build_request(method, url, **kwargs)

    def _merge_headers(self, headers: Any = None) -> Any:
        # httpx's hook between build_request and Request (0.28's BaseClient._merge_headers). Only
        # a plain str dict is cached (the engine's HttpRequest.headers); anything else goes through.
        if not isinstance(headers, dict) or len(self._merged) >= CACHE_ENTRIES:
            return super()._merge_headers(headers)
        client = self.headers
        raw = client.raw
        if self._merged_with is not client or self._merged_raw != raw:
            self._merged.clear()
            self._merged_with, self._merged_raw = client, raw
        key = tuple(headers.items())
        merged = self._merged.get(key)
        if merged is None:
            merged = self._merged[key] = super()._merge_headers(headers)
        return merged


def build_client(
    providers: Iterable[ProviderSpec], *, cap: int, transport: TransportName
) -> httpx.AsyncClient:
    """One client for the run; ``cap`` connections per host (the engine never has more units in flight)."""
    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=cap)
    if transport == "httpx":
        return RunClient(limits=limits, follow_redirects=False)
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for provider in providers:
        if provider.transport == "httpx":
            url = httpx.URL(provider.base_url)
            # The netloc, not host and port: it keeps an IPv6 address in its brackets ("[::1]:8080").
            mounts[f"{url.scheme}://{url.netloc.decode('ascii')}"] = httpx.AsyncHTTPTransport(limits=limits)
    return RunClient(
        transport=HttpTransport(max_connections_per_host=cap), mounts=mounts, follow_redirects=False
    )
