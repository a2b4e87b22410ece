"""What every dialect's faults share: status reasons, error messages, retry headers, malformed events.

The shapes that differ (error bodies, mid-stream errors) belong to each dialect's emitter.
"""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.simulator.frames import Frame

if TYPE_CHECKING:
    from runner.simulator.config import Fault

REASONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Site Overloaded",
}


def error_message(status: int, *, quota: bool = False) -> str:
    """The human message of a status fault; a quota fault's message always says ``insufficient_quota``."""
    if quota:
        return "insufficient_quota: you exceeded your current quota, check your plan and billing details."
    return f"Simulated {status} {REASONS.get(status, 'error')}."


def retry_headers(fault: Fault) -> list[tuple[bytes, bytes]]:
    """``Retry-After`` / ``retry-after-ms`` for a status fault (429 gets ``Retry-After: 1`` by default)."""
    arg = fault.arg
    if arg is None:
        return [(b"retry-after", b"1")] if fault.name == "http_429" else []
    kind, _, value = arg.partition("=")
    if kind == "ms":
        return [(b"retry-after-ms", value.encode())]
    if kind == "date":
        when = email.utils.formatdate(time.time() + float(value), usegmt=True)
        return [(b"retry-after", when.encode())]
    return [(b"retry-after", value.encode())]


def malformed(frame: Frame) -> Frame:
    """The same event with its JSON cut in half: still one well-framed SSE event, bad JSON."""
    wire = frame.wire
    start = wire.find(b"data: ") + 6
    end = wire.find(b"\n", start)
    if wire[end - 1 : end] == b"\r":  # CRLF line ends (gemini): keep the event's own terminator
        end -= 1
    return Frame(wire[: start + (end - start) // 2] + wire[end:], frame.token)


def with_message(body: bytes, message: str) -> bytes:
    """A dialect's JSON error body with its (first) human ``message`` replaced by ``message``.

    Every dialect's error object keeps its text under ``message`` (OpenAI's and Anthropic's ``error``,
    Runware's ``errors[0]``), so the 400 for a refused body says why, as the real APIs do.
    """
    doc = orjson.loads(body)
    found = _message_holder(doc)
    if found is None:
        return body
    found["message"] = message
    return orjson.dumps(doc)


def _message_holder(doc: Any) -> dict[str, Any] | None:
    if isinstance(doc, dict):
        if isinstance(doc.get("message"), str):
            return doc
        children: list[Any] = list(doc.values())
    elif isinstance(doc, list):
        children = doc
    else:
        return None
    for child in children:
        found = _message_holder(child)
        if found is not None:
            return found
    return None
