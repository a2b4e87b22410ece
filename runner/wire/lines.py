"""The SSE line rules (WHATWG HTML 9.2.6) and the decoder state they act on.

``SSEDecoder`` (runner.wire.sse) reads whole events straight from its buffer where it can; everything
else, up to the next blank line, goes through ``_process`` here, so its result is exactly that of
reading line by line. Kept apart so that the spec's rules read in one place, and the fast paths in
another.
"""

from __future__ import annotations

from typing import Any, Final

from runner.errors import ResponseTooLargeError
from runner.spec import DEFAULT_MAX_RESPONSE_BYTES
from runner.wire.events import RawEvent, ServerSentEvent, TypedRun, new_event

# One event (its unfinished line and data lines) may hold this much by default: the default
# max_response_bytes, the most a body may hold (the attempt layer passes the provider's own).
MAX_EVENT_BYTES: Final = DEFAULT_MAX_RESPONSE_BYTES


class LineDecoder:
    """The state of an SSE decoder between reads, and the spec's line-by-line rules over it.

    Attributes:
        comments: comment lines seen (``: heartbeat``, ``: ping``, ``: keep-alive``).
        last_event_id: the sticky ``id`` value.
        retry: the last valid ``retry`` value in ms, or None.
    """

    __slots__ = (
        "_at_start",
        "_data",
        "_data_size",
        "_event_type",
        "_more",
        "_more_size",
        "_pending_cr",
        "_tail",
        "comments",
        "last_event_id",
        "max_event_bytes",
        "retry",
    )

    def __init__(self, *, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._tail = b""  # an incomplete line carried to the next read (never holds a CR)
        # Reads with no line ending that continue _tail, kept apart and joined once when the line
        # ends: concatenating each onto _tail would copy the line again per read (quadratic).
        self._more: list[bytes] = []
        self._more_size = 0
        self._data_size = 0  # bytes in _data (the data lines of an unfinished event)
        self._pending_cr = False  # the last read ended in CR: a leading LF next is its CRLF pair
        self._at_start = True  # the BOM check is still owed (its 3 bytes may arrive split)
        self._data: list[bytes] = []  # data lines of the event being built
        self._event_type = b""
        self.comments = 0
        self.last_event_id = ""
        self.retry: int | None = None

    def _checked(self, events: list[Any]) -> list[Any]:
        # A read larger than the bound may hold a whole event larger than it, which never sat in
        # the buffers _check_size watches. (Text is measured in characters: never more than bytes.)
        for event in events:
            if isinstance(event, TypedRun):
                if len(event.text) > self.max_event_bytes:  # (no event of it is longer than it)
                    self._checked(event.events())
                continue
            size = len(event) if isinstance(event, bytes) else len(event.data)
            self._check_size(size)
        return events

    def _check_size(self, size: int) -> None:
        # ``size``: what one event holds so far (its data lines and its unfinished line).
        if size > self.max_event_bytes:
            raise ResponseTooLargeError(
                f"one SSE event is larger than {self.max_event_bytes} bytes ({size} buffered so far)"
            )

    def _typed(self, name: bytes, data: bytes, raw: bool) -> RawEvent:
        # A two-line "event: NAME" + "data: DATA" event, as _process + _dispatch would hand it out.
        if not name or name == b"message":
            return data if raw else self._message(data)
        return new_event(
            ServerSentEvent,
            (
                data.decode("utf-8", "replace"),
                name.decode("utf-8", "replace"),
                self.last_event_id,
                self.retry,
            ),
        )

    def _message(self, data: bytes) -> ServerSentEvent:
        # A single-line data event of type message, as feed() hands it out.
        return new_event(
            ServerSentEvent, (data.decode("utf-8", "replace"), "message", self.last_event_id, self.retry)
        )

    def close(self) -> list[ServerSentEvent]:
        """Signal EOF and reset the decoder. The list it returns is always empty.

        A list so that EOF reads like one more ``feed`` (``events.extend(decoder.close())``). A last
        line without its line ending is not a line: the spec discards it along with the unterminated
        event it belongs to, so nothing is ever left to dispatch.
        """
        self._tail = b""
        self._more = []
        self._more_size = 0
        self._data = []
        self._data_size = 0
        self._event_type = b""
        self._pending_cr = False
        return []

    def _process(self, lines: list[bytes], raw: bool) -> list[RawEvent]:
        events: list[RawEvent] = []
        data = self._data
        kept = len(data)  # data lines of the event in progress that were already counted
        for line in lines:
            if not line:
                if data:
                    events.append(self._dispatch(data, raw))
                    data = self._data = []
                    kept = self._data_size = 0
                self._event_type = b""
                continue
            # Hot path: nearly every line of an LLM stream is a data line.
            if line[:5] == b"data:":
                value = line[5:]
                data.append(value[1:] if value[:1] == b" " else value)
                continue
            if line[:1] == b":":
                self.comments += 1
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":  # a bare "data" line: an empty data line
                data.append(value)
            elif name == b"event":
                self._event_type = value
            elif name == b"id":
                if b"\x00" not in value:
                    self.last_event_id = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():  # bytes.isdigit: ASCII digits only
                self.retry = int(value)
            # any other field name is ignored (names are case-sensitive: "DATA" is unknown)
        if len(data) > kept:  # the event goes on into the next read: count what it holds so far
            self._data_size += sum(map(len, data[kept:]))
            self._check_size(self._data_size)
        return events

    def _dispatch(self, data: list[bytes], raw: bool) -> RawEvent:
        # Decoding the joined lines is the same as decoding each line: LF is ASCII and can never
        # be part of a multi-byte sequence, and an incomplete sequence before it becomes U+FFFD.
        joined = data[0] if len(data) == 1 else b"\n".join(data)
        event_type = self._event_type
        if raw and (not event_type or event_type == b"message"):
            return joined  # type message, whether implied or named (feed_raw's contract)
        return new_event(
            ServerSentEvent,
            (
                joined.decode("utf-8", "replace"),
                event_type.decode("utf-8", "replace") if event_type else "message",
                self.last_event_id,
                self.retry,
            ),
        )
