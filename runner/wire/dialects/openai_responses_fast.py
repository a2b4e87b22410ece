"""The ``openai-responses`` msgspec fast path: the delta events as one typed Struct, and a whole
``TypedRun`` (one read's typed events) decoded in one msgspec call. ``OpenAIResponsesAccumulator``
(openai_responses.py) uses it per run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Final

import msgspec

from runner.wire.dialects.openai_chat_fast import Int64  # noqa: TC001 (msgspec reads it at run time)

if TYPE_CHECKING:
    from runner.wire.sse import TypedRun

# The events read here: every one of them carries only the fields of Delta (what else a delta of
# these kinds carries is a miss, left to the orjson path).
TEXT_DELTA: Final = "response.output_text.delta"
FAST_KINDS: Final = frozenset(
    {
        TEXT_DELTA,
        "response.refusal.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.function_call_arguments.delta",
    }
)


class Delta(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Any of the FAST_KINDS events, every field it may carry. Exact for the reasons
    openai_chat_fast gives (unknown fields forbidden, concrete types, int64 range), so whatever
    msgspec accepts here orjson reads as the same values."""

    type: str
    sequence_number: Int64 | None = None
    item_id: str | None = None
    output_index: Int64 | None = None
    content_index: Int64 | None = None
    summary_index: Int64 | None = None
    delta: str | None = None
    # Only the empty list: logprobs asked for (objects with floats) are a miss, so no float has to
    # be proven read alike, and no array here can hold an array (the run's framing needs that).
    logprobs: Annotated[list[None], msgspec.Meta(max_length=0)] | None = None
    obfuscation: str | None = None


decode_delta: Final = msgspec.json.Decoder(Delta).decode
_decode_run: Final = msgspec.json.Decoder(list[tuple[Delta]]).decode


def decode_run(run: TypedRun) -> list[tuple[Delta]] | None:
    """The Delta of each event of ``run``, in order; None when any is not one.

    ``b"[[" + run.datas + b"]]"`` is decoded by one call: ``[[D1<TAB>],[D2<TAB>],...[Dn]]``. It is
    exact: the decoded list holds one Delta per payload, each what decoding that payload alone
    gives, or the call fails or the count differs. Why: no D holds an LF (runner.wire.sse); a
    string cannot run across a joiner (JSON forbids a raw TAB in one), nor an object (no "]" may
    follow inside one); an array may, but then the "," "[" after it need an enclosing array whose
    items are arrays, and the only such one is the outer list (Delta holds no array that may hold
    one): so every joiner separates two top-level items, and a payload holding "],[" itself would
    make one item more than ``run.blocks``. With exactly that many items, item i is "[" D_i "]":
    D_i alone is one JSON value, a Delta. Names are not needed: a Delta's ``type`` is a str, and
    the accumulator then reads the type, never the name.
    """
    try:
        if run.blocks == 1:  # (one event per read: its payload alone, without the framing)
            return [(decode_delta(run.datas),)]
        decoded = _decode_run(b"[[" + run.datas + b"]]")
    except (ValueError, RecursionError):
        # msgspec's DecodeError / ValidationError and the UnicodeDecodeError of invalid UTF-8
        # are ValueErrors: any of them only means a miss.
        return None
    return decoded if len(decoded) == run.blocks else None
