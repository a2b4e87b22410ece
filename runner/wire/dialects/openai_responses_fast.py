"""The ``openai-responses`` msgspec fast path: the delta events as one typed Struct, a whole
``TypedRun`` (one read's typed events) decoded in one msgspec call, and the hot part's decoder,
which takes a run only when all of it goes to that part. ``OpenAIResponsesAccumulator``
(openai_responses.py) uses it per run.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec

from runner.wire.dialects.openai_chat_fast import Int64  # noqa: TC001 (msgspec reads it at run time)

if TYPE_CHECKING:
    from collections.abc import Callable

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


# The fields of Delta other than the hot part's key and its delta, as defstruct takes them.
_REST: Final = [
    (field.name, field.type, None)
    for field in msgspec.structs.fields(Delta)
    if field.name not in {"type", "output_index", "content_index", "delta"}
]
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


@functools.lru_cache(maxsize=64)  # (built once per part kind and indexes; a stream has a few)
def _hot_decoder(kind: str, output: int | None, content: int | None) -> Callable[[bytes], list[Any]]:
    def index(name: str, value: int | None) -> tuple[Any, ...]:
        # An int index must be that very int; None: null or absent.
        return (name, Literal[value]) if value is not None else (name, None, None)

    fields = [
        ("type", Literal[kind]),
        index("output_index", output),
        index("content_index", content),
        ("delta", _NonEmpty),
        *_REST,
    ]
    hot = msgspec.defstruct("HotDelta", fields, forbid_unknown_fields=True, gc=False, kw_only=True)
    return msgspec.json.Decoder(list[tuple[hot]]).decode  # type: ignore[valid-type]


def hot_decoder(kind: object, output: object, content: object) -> Callable[[bytes], list[Any]] | None:
    """A decoder of ``b"[[" + run.datas + b"]]"`` (as decode_run's) that takes the run only when
    every event is a non-empty delta of kind ``kind`` to the part at ``output`` / ``content`` (an
    int, or None: null or absent), else raises a ValueError; None when no such part can be hot.

    The accumulator then appends every delta without reading a field in Python: msgspec checks the
    kind and indexes (Literal fields, compared in C; an int only, as the hot check has it) and that
    no delta is empty. Exact as decode_run is: the same fields and types as Delta otherwise.
    """
    if type(kind) is not str or kind not in FAST_KINDS:
        return None
    if not (output is None or type(output) is int) or not (content is None or type(content) is int):
        return None
    return _hot_decoder(kind, output, content)
