"""The ``gemini`` msgspec fast path: the common ``GenerateContentResponse`` as typed Structs, and a
read's events decoded in one msgspec call. ``GeminiAccumulator.feed_many`` (gemini.py) uses it per read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import msgspec

from runner.wire.dialects.openai_chat_fast import Int64  # noqa: TC001 (msgspec reads it at run time)
from runner.wire.sse import DATA_JOINER

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.wire.sse import RawEvent

# Exact for the reasons openai_chat_fast gives: unknown fields forbidden, concrete types, int64
# range; whatever msgspec accepts here, orjson reads as the same values. A part with a
# functionCall or inline data, a candidate with safety ratings or citations, promptFeedback, an
# error: all unknown here, so a miss, left to the orjson path.


class Part(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    text: str | None = None
    thought: bool | None = None
    thoughtSignature: str | None = None


class Content(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    parts: list[Part] | None = None
    role: str | None = None


class Candidate(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    content: Content | None = None
    index: Int64 | None = None
    finishReason: str | None = None


class TokenCount(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    modality: str | None = None
    tokenCount: Int64 | None = None


class UsageMetadata(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Only checked here, never read: the accumulator keeps the payload of the last event that has
    one and reads its usageMetadata with orjson at ``result()`` (Usage.raw is the dict as sent, in
    the order sent, which a Struct would not keep). Checked with typed fields, it costs msgspec a
    fraction of decoding it into a dict of unions, and anything it accepts, orjson reads. Its
    lists hold objects only: no array in these Structs may hold an array (decode_events needs that).
    """

    promptTokenCount: Int64 | None = None
    candidatesTokenCount: Int64 | None = None
    totalTokenCount: Int64 | None = None
    thoughtsTokenCount: Int64 | None = None
    cachedContentTokenCount: Int64 | None = None
    toolUsePromptTokenCount: Int64 | None = None
    trafficType: str | None = None
    promptTokensDetails: list[TokenCount] | None = None
    candidatesTokensDetails: list[TokenCount] | None = None
    cacheTokensDetails: list[TokenCount] | None = None
    toolUsePromptTokensDetails: list[TokenCount] | None = None


class Response(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    candidates: list[Candidate] | None = None
    usageMetadata: UsageMetadata | None = None
    modelVersion: str | None = None
    responseId: str | None = None
    createTime: str | None = None


decode_response: Final = msgspec.json.Decoder(Response).decode
_decode_many: Final = msgspec.json.Decoder(list[tuple[Response]]).decode


def decode_events(events: Sequence[RawEvent]) -> list[tuple[Response]] | None:
    """The Response of each of a read's events, in order; None unless each is message bytes and one Response.

    ``b"[[" + D1 + TAB "],[" + D2 ... + b"]]"`` is decoded by one call; why that is exact:
    ``openai_responses_fast.decode_run`` (the same framing, and here too no array may hold one).
    """
    try:
        if len(events) == 1:  # (one event per read: its payload alone, without the framing)
            event = events[0]
            return [(decode_response(event),)] if isinstance(event, bytes) else None
        # bytes.join raises TypeError for anything not bytes: a named event or a TypedRun.
        decoded = _decode_many(b"[[" + DATA_JOINER.join(events) + b"]]")  # type: ignore[arg-type]
    except (TypeError, ValueError, RecursionError):
        return None
    return decoded if len(decoded) == len(events) else None
