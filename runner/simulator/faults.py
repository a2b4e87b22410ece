"""Fault payloads in each provider's own shape: HTTP error bodies, retry headers, mid-stream errors.

Bodies: openai-chat ``{"error": {message, type, param, code}}``; anthropic-messages
``{"type": "error", "error": {type, message}}``; runware ``{"errors": [{code, message, taskType,
taskUUID}]}``. A quota fault always carries the literal ``insufficient_quota`` in its body.
"""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.simulator.frames import Frame, data_event

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
# status -> (openai type, openai code, anthropic type, runware code)
_KINDS: Final = {
    400: ("invalid_request_error", "invalid_request", "invalid_request_error", "invalidRequest"),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error", "invalidApiKey"),
    402: ("insufficient_balance", "payment_required", "billing_error", "insufficientCredits"),
    403: ("invalid_request_error", "forbidden", "permission_error", "forbidden"),
    404: ("invalid_request_error", "model_not_found", "not_found_error", "modelNotFound"),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error", "rateLimitExceeded"),
    500: ("server_error", "internal_error", "api_error", "internalServerError"),
    502: ("server_error", "bad_gateway", "api_error", "badGateway"),
    503: ("server_error", "service_unavailable", "api_error", "serviceUnavailable"),
    529: ("server_error", "overloaded", "overloaded_error", "overloaded"),
}


def error_body(dialect: str, status: int, *, quota: bool = False, task: str = "") -> bytes:
    """The JSON error body a provider of ``dialect`` sends with ``status``."""
    default = ("server_error", "server_error", "api_error", "internalServerError")
    if status < 500:
        default = ("invalid_request_error", "client_error", "invalid_request_error", "invalidRequest")
    oa_type, oa_code, an_type, rw_code = _KINDS.get(status, default)
    message = f"Simulated {status} {REASONS.get(status, 'error')}."
    if quota:
        oa_type = oa_code = "insufficient_quota"
        rw_code = "insufficientCredits"
        message = "insufficient_quota: you exceeded your current quota, check your plan and billing details."
    payload: dict[str, Any]
    if dialect == "anthropic-messages":
        payload = {"type": "error", "error": {"type": an_type, "message": message}}
    elif dialect == "runware":
        error = {"code": rw_code, "message": message, "taskType": "textInference", "taskUUID": task}
        payload = {"errors": [error]}
    else:
        payload = {"error": {"message": message, "type": oa_type, "param": None, "code": oa_code}}
    return orjson.dumps(payload)


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


def stream_error(dialect: str, *, miromind: bool, response_id: str, model: str, task: str) -> list[Frame]:
    """The frames of a mid-stream error in the dialect's own shape; the server ends the body after."""
    if dialect == "anthropic-messages":
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return [Frame(data_event(error, event=b"error"))]
    if dialect == "runware":
        message = "The provider timed out while generating the response."
        item = {"code": "timeoutProvider", "message": message, "taskType": "textInference", "taskUUID": task}
        return [Frame(data_event({"errors": [item]}))]
    error_object = {
        "message": "Simulated upstream failure mid-stream.",
        "type": "server_error",
        "code": "stream_error",
    }
    if miromind:
        # MiroMind: a final chunk with finish_reason "error" and an error object, then [DONE].
        chunk = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
            "error": error_object,
        }
        return [Frame(data_event(chunk)), Frame(b"data: [DONE]\n\n")]
    return [Frame(data_event({"error": {**error_object, "param": None}}))]


def malformed(frame: Frame) -> Frame:
    """The same event with its JSON cut in half: still one well-framed SSE event, bad JSON."""
    wire = frame.wire
    start = wire.find(b"data: ") + 6
    end = wire.rfind(b"\n\n")
    return Frame(wire[: start + (end - start) // 2] + b"\n\n", frame.token)
