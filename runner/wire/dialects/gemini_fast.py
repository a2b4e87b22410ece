"""The ``gemini`` msgspec fast path: the common ``GenerateContentResponse`` as typed Structs, and a
read's events decoded in one msgspec call. ``GeminiAccumulator.feed_many`` (gemini.py) uses it per read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import msgspec

from runner.wire.dialects.openai_chat_fast import Int64
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


# usageMetadata is kept as sent (Usage.raw): a dict, in the order sent, of counts, strings
# (trafficType) and lists of {modality, tokenCount} objects. Its lists hold objects only: no array
# in these Structs may hold an array (decode_events needs that).
_UsageValue = Int64 | str | list[dict[str, Int64 | str]]


class Response(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    candidates: list[Candidate] | None = None
    usageMetadata: dict[str, _UsageValue] | None = None
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
