"""What the SSE decoder hands out (runner.wire.sse): single events, and whole runs of typed events.

Kept apart from the decoder so that readers (the dialects) see the shapes and helpers in one small
module; ``runner.wire.sse`` re-exports every name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

# What stands between two DATA values in ``TypedRun.datas``: TAB "]" "," "[". ``b"[[" + datas +
# b"]]"`` is then one JSON document whose items are the values in one-element arrays, as a JSON
# reader decodes them all in one call (openai_responses_fast proves it exact). Any byte would do
# for the SSE reading; these keep one value's text from running into the next one's (JSON
# forbids a raw TAB in a string; "]" cannot follow inside an object).
DATA_JOINER: Final = b"\t],["


class ServerSentEvent(NamedTuple):
    """One dispatched event. A NamedTuple because one is built per chunk on the hot path."""

    data: str
    event: str = "message"
    id: str = ""  # the last event ID at dispatch time (sticky across events)
    retry: int | None = None  # the reconnection time in ms, if the stream ever set one


class TypedRun(NamedTuple):
    """Whole typed events of one read, handed out by ``SSEDecoder.feed_raw`` undecoded.

    ``text`` is ``blocks`` blocks of exactly two lines, ``event: NAME`` and ``data: DATA``, each
    ended by a blank line, and nothing else (no id, retry or comment line can hide in it: its events
    depend on its text alone). Typed streams (the Responses API's) come as one run per read, so a
    dialect can decode all of its payloads in one call (openai_responses_fast) instead of paying a
    Python-level step per event; any other reader calls ``events()``.
    """

    text: bytes
    blocks: int
    id: str  # the decoder's last_event_id and retry when the run was read
    retry: int | None
    # Every DATA of the run, in order, joined by DATA_JOINER (none holds an LF).
    datas: bytes

    def events(self) -> list[bytes | ServerSentEvent]:
        """The run's events as ``feed_raw`` hands out single events: message data as bytes."""
        items: list[bytes | ServerSentEvent] = []
        for block in self.text[7:-2].split(b"\n\nevent: "):
            # Every LF of a block opens one of its data lines: "NAME\ndata: X\ndata: Y".
            name, *lines = block.split(b"\ndata: ")
            if not lines:
                continue  # an event without data is not dispatched
            data = lines[0] if len(lines) == 1 else b"\n".join(lines)
            if not name or name == b"message":
                items.append(data)
            else:
                fields = (
                    data.decode("utf-8", "replace"),
                    name.decode("utf-8", "replace"),
                    self.id,
                    self.retry,
                )
                items.append(new_event(ServerSentEvent, fields))
        return items


# What ``SSEDecoder.feed_raw`` hands out: the data of an event of type ``message`` (the default
# type, the only one OpenAI-style streams use) as its raw bytes, UTF-8 not yet decoded or validated;
# a read's whole typed events as one TypedRun; any other event as a ServerSentEvent. Building
# neither a str nor a tuple per chunk is most of what keeps decode + accumulate near the cost of
# the JSON decoder alone (PERFORMANCE.md).
RawEvent: TypeAlias = bytes | ServerSentEvent | TypedRun

# ``new_event(ServerSentEvent, fields)``: building the tuple directly skips NamedTuple's
# Python-level __new__ (about 100 ns a call).
new_event = tuple.__new__


def as_event(item: bytes | ServerSentEvent) -> ServerSentEvent:
    """A single ``feed_raw`` item as a ServerSentEvent: bytes are a ``message`` event, bad UTF-8 U+FFFD.

    For accumulators that read whole events (``single_events`` first expands a TypedRun); the id and
    retry are left at their defaults (see ``SSEDecoder.feed_raw``).
    """
    if isinstance(item, bytes):
        return ServerSentEvent(item.decode("utf-8", "replace"))
    return item


def event_count(items: Sequence[RawEvent]) -> int:
    """How many SSE events ``feed_raw`` items hold: a TypedRun holds ``blocks`` of them."""
    count = len(items)
    for item in items:
        if type(item) is TypedRun:
            count += item.blocks - 1
    return count


def single_events(items: Iterable[RawEvent]) -> list[bytes | ServerSentEvent]:
    """``feed_raw`` items with every TypedRun expanded into its events, in order."""
    flat: list[bytes | ServerSentEvent] = []
    for item in items:
        if isinstance(item, TypedRun):
            flat.extend(item.events())
        else:
            flat.append(item)
    return flat
