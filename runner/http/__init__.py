"""runner's HTTP/1.1 transport under httpx: a sans-IO parser, an O(1) per-host pool, TLS over trio."""

from runner.http.transport import Body, HttpTransport, body_of

__all__ = ["Body", "HttpTransport", "body_of"]
