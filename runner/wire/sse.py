"""Sans-IO Server-Sent Events decoder: bytes go in as they arrive, events come out.

Follows WHATWG HTML §9.2.5-9.2.6 exactly (where the SDKs differ from it, this decoder follows the
spec): lines end at CR, LF or CRLF only, a CRLF split across two reads is one
line ending, one leading BOM is dropped, comments are skipped but counted, an event with an empty
data buffer is not dispatched, an unterminated last event is dropped, invalid UTF-8 becomes U+FFFD.
Where the spec sets no limit, this decoder bounds the bytes one event may buffer (``max_event_bytes``)
and raises ``runner.errors.ResponseTooLargeError`` past it. Its work is linear in the bytes fed, however
long a line: a line that spans many reads is collected as a list of pieces and joined once.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal, overload

from runner.errors import ResponseTooLargeError
from runner.spec import DEFAULT_MAX_RESPONSE_BYTES
from runner.wire.events import (
    DATA_JOINER,
    RawEvent,
    ServerSentEvent,
    TypedRun,
    as_event,
    single_events,
)

__all__ = [
    "DATA_JOINER",
    "MAX_EVENT_BYTES",
    "RawEvent",
    "SSEDecoder",
    "ServerSentEvent",
    "TypedRun",
    "as_event",
    "decode_all",
    "single_events",
]


_BOM = b"\xef\xbb\xbf"
# From the end of one data value of a typed run to the start of the next one (TypedRun.datas).
_BETWEEN: Final = re.compile(rb"\n\nevent: [^\n]*\ndata: ")
# Building the tuple directly skips NamedTuple's Python-level __new__ (about 100 ns a call).
_new_event = tuple.__new__
# One event (its unfinished line and data lines) may hold this much by default: the default
# max_response_bytes, the most a body may hold (the attempt layer passes the provider's own).
MAX_EVENT_BYTES: Final = DEFAULT_MAX_RESPONSE_BYTES


class SSEDecoder:
    """Incremental decoder. Feed it every read with ``feed``; call ``close`` at EOF.

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

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Take one read of the body and return the events it completed, in order."""
        if len(chunk) > self.max_event_bytes:
            return self._checked(self._feed(chunk, False))
        return self._feed(chunk, False)

    def feed_raw(self, chunk: bytes) -> list[RawEvent]:
        """Like ``feed``, but an event of type ``message`` comes out as its raw data bytes.

        The hot path of the attempt layer: the accumulator hands the bytes straight to the JSON
        decoder, and decodes them to text (invalid UTF-8 as U+FFFD, as ``feed`` does) only if the
        JSON decoder rejects them. Events of any other type come out as ``ServerSentEvent``, except
        that a read's run of whole ``event:`` + ``data:`` blocks comes out as one ``TypedRun``
        (``TypedRun.events()`` or ``single_events`` give its events as single items). A ``message``
        event's id and retry are not carried: they are this decoder's ``last_event_id`` and
        ``retry`` attributes (no dialect reads them).
        """
        if len(chunk) > self.max_event_bytes:
            return self._checked(self._feed(chunk, True))
        return self._feed(chunk, True)

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

    # With raw=False every event comes out as a ServerSentEvent (_message, _dispatch): the
    # overloads state it, so neither public method needs a cast.
    @overload
    def _feed(self, chunk: bytes, raw: Literal[False]) -> list[ServerSentEvent]: ...

    @overload
    def _feed(self, chunk: bytes, raw: Literal[True]) -> list[RawEvent]: ...

    def _feed(self, chunk: bytes, raw: bool) -> list[Any]:
        if not chunk:
            return []
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        if self._tail and 10 not in chunk and 13 not in chunk and not self._at_start:
            # The line in _tail goes on and does not end in this read either: set the read aside.
            self._more.append(chunk)
            self._more_size += len(chunk)
            self._check_size(len(self._tail) + self._more_size + self._data_size)
            return []
        end = len(chunk) - 2
        if (
            not self._tail  # (first: with several events per read, nearly always a partial one)
            and chunk[:6] == b"data: "
            and chunk.find(10) == end  # the first LF is the second-to-last byte ...
            and chunk[-1] == 10  # ... and the last byte is LF: exactly one line and a blank one
            and 13 not in chunk  # (int membership is a memchr: far cheaper than b"\r" in chunk)
            and not self._data
            and not self._event_type
        ):
            # Fast path: the read is exactly one single-line data event, the common case for LLM
            # streams (one event per read). Same result as the general path, in a few C calls.
            self._at_start = False
            if raw:
                return [chunk[6:end]]
            data = chunk[6:end].decode("utf-8", "replace")
            return [_new_event(ServerSentEvent, (data, "message", self.last_event_id, self.retry))]
        if (
            not self._tail
            and chunk[:6] == b"data: "
            and chunk.find(13) == end - 2  # the only CRs and LFs: the closing CRLF CRLF (Gemini's)
            and chunk.find(10) == end - 1
            and chunk[end:] == b"\r\n"
            and not self._data
            and not self._event_type
        ):
            self._at_start = False
            if raw:
                return [chunk[6 : end - 2]]
            data = chunk[6 : end - 2].decode("utf-8", "replace")
            return [_new_event(ServerSentEvent, (data, "message", self.last_event_id, self.retry))]
        if (
            not self._tail
            and chunk[:7] == b"event: "
            and chunk[-1] == 10
            and (line_end := chunk.find(10)) < end
            and chunk.find(10, line_end + 1) == end  # LFs: the event line's, the data line's, the blank
            and chunk.startswith(b"data: ", line_end + 1)
            and 13 not in chunk
            and not self._data
            and not self._event_type
        ):
            # The same for one typed event per read (Responses, Anthropic): a TypedRun of one.
            self._at_start = False
            if raw:
                run = (chunk, 1, self.last_event_id, self.retry, chunk[line_end + 7 : end])
                return [_new_event(TypedRun, run)]
            return [self._typed(chunk[7:line_end], chunk[line_end + 7 : end], False)]
        if self._more:
            buffer = b"".join([self._tail, *self._more, chunk])
            self._more = []
            self._more_size = 0
        else:
            buffer = self._tail + chunk if self._tail else chunk
        if self._at_start:
            if len(buffer) < 3 and _BOM.startswith(buffer):
                self._tail = buffer  # wait: could still be a split BOM
                return []
            self._at_start = False
            if buffer.startswith(_BOM):
                buffer = buffer[3:]
        head: list[Any] = []
        if 13 in buffer:
            if not self._data and not self._event_type and buffer.startswith(b"data: "):
                # CRLF streams (Gemini's): whole single-line events straight from the buffer, so
                # only what is left after them is normalized (bytes.replace of CRLF is slow).
                head, buffer = _crlf_events(buffer)
                if not raw:
                    head = [self._message(data) for data in head]
                if 13 not in buffer and 10 not in buffer:
                    # Nearly always: what is left is the start of the next event's data line.
                    self._tail = buffer
                    if len(buffer) > 65536:  # (as _ended: only a long partial line can cross it)
                        self._check_size(len(buffer))
                    return head
            # A CR at the very end is a complete line ending, but an LF that opens the next read
            # belongs to it (WHATWG: CRLF is one line ending even when split across reads).
            if buffer.endswith(b"\r"):
                self._pending_cr = True
            if 13 in buffer:
                buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        elif self._event_type and not self._data and buffer.startswith(b"data: "):
            # Typed streams: a read often ends after an event's "event:" line, or in its data line.
            # Reading that line again sets the same type again, and the read is whole blocks,
            # the fast way (a TypedRun) instead of line by line.
            buffer = b"event: " + self._event_type + b"\n" + buffer
            self._event_type = b""
            return self._feed_blocks(buffer, raw)
        elif self._data or self._event_type:
            # An event is half-built (typed streams: a read often ends after its "event:" line).
            # Finish it line by line up to its blank line; the rest of the read goes the fast way.
            if buffer[:1] == b"\n":
                split = 1
            else:
                found = buffer.find(b"\n\n")
                split = found + 2 if found >= 0 else 0
            if split:
                events = self._process(buffer[: split - 1].split(b"\n"), raw)
                self._tail = b""
                events.extend(self._feed_blocks(buffer[split:], raw))
                return events
        if not self._data and not self._event_type:
            # LF-only now, starting at a line start: the block path.
            events = self._feed_blocks(buffer, raw)
            return head + events if head else events
        lines = buffer.split(b"\n")
        self._tail = lines.pop()  # what follows the last line ending is not a line yet
        if not lines:
            self._check_size(len(self._tail) + self._data_size)
            return head
        return head + self._process(lines, raw) if head else self._process(lines, raw)

    def _check_size(self, size: int) -> None:
        # ``size``: what one event holds so far (its data lines and its unfinished line).
        if size > self.max_event_bytes:
            raise ResponseTooLargeError(
                f"one SSE event is larger than {self.max_event_bytes} bytes ({size} buffered so far)"
            )

    def _feed_blocks(self, buffer: bytes, raw: bool) -> list[RawEvent]:
        # Fast path (LF-only input, no event half-built: the buffer starts at a line start, with
        # empty data and event-type buffers). Nearly every LLM event is one "data: ..." line and a
        # blank line: take those whole, straight from the buffer. Anything else, up to the next
        # blank line, goes through the line rules, so the result is exactly that of reading line
        # by line.
        events: list[RawEvent] = []
        start = 0  # always at the beginning of a line
        scan = True
        last = buffer.rfind(b"\n\n")
        if last >= 0 and buffer.startswith(b"data: "):
            # One C call for a whole read of such events: buffer[6:last] split at "\n\ndata: ".
            # If no piece holds an LF, the separators are the only LFs before `last`, so
            # buffer[:last + 2] is exactly "data: <piece>\n\n" once per piece: one single-line
            # event each, and no blank line follows `last`, so only the tail is left. Otherwise
            # the pieces before the first one holding an LF are such events (each took 6 +
            # len(piece) + 2 bytes) and the loop below goes on from there.
            # (list[Any]: a list of bytes is a list of RawEvent, but list is invariant)
            payloads: list[Any] = buffer[6:last].split(b"\n\ndata: ")
            for piece in payloads:
                if 10 in piece:
                    # index() finds this very piece: no earlier piece is equal, none holds an LF
                    del payloads[payloads.index(piece) :]
                    start = 8 * len(payloads) + sum(map(len, payloads))
                    break
            else:
                start = last + 2
                scan = False
            events = payloads if raw else [self._message(data) for data in payloads]
        elif last >= 0 and buffer.startswith(b"event: "):
            # The same for typed streams: "event: NAME\ndata: DATA\n\n" blocks.
            head = buffer.find(10)  # the end of the first "event: NAME" line
            if raw and buffer.startswith(b"data: ", head + 1):
                # "\n\nevent: NAME\ndata: " between two data values becomes DATA_JOINER, in one
                # bytes.replace when every NAME is the first one's (a read of text deltas), else
                # in one regex pass (several times slower). No LF left means every block up to
                # `last` is exactly those two lines: one TypedRun, whatever the number of events.
                values = buffer[head + 7 : last]
                between = b"\n\nevent: " + buffer[7:head] + b"\ndata: "
                datas = values.replace(between, DATA_JOINER)
                if 10 in datas:
                    datas, joins = _BETWEEN.subn(DATA_JOINER, values)
                else:  # (each replacement took len(between) - len(DATA_JOINER) bytes out)
                    joins = (len(values) - len(datas)) // (len(between) - len(DATA_JOINER))
                if 10 not in datas:
                    run = (buffer[: last + 2], joins + 1, self.last_event_id, self.retry, datas)
                    return self._ended(buffer, last + 2, [_new_event(TypedRun, run)], raw)
            # Else blocks taken whole while each is exactly those two lines (no other LF in it);
            # from the first one that is not, the loop below reads line by line.
            typed = []
            for block in buffer[7:last].split(b"\n\nevent: "):
                name, separator, data = block.partition(b"\ndata: ")
                if not separator or 10 in data or 10 in name:
                    scan = True
                    break
                typed.append(self._typed(name, data, raw))
                start += len(block) + 9  # "event: " + block + "\n\n"
            else:
                start = last + 2  # (what the sum comes to: every block was taken)
                scan = False
            events = typed
        find = buffer.find
        size = len(buffer)
        while scan and (newline := find(b"\n", start)) >= 0:
            if newline + 1 < size and buffer[newline + 1] == 10 and buffer.startswith(b"data: ", start):
                data = buffer[start + 6 : newline]
                events.append(data if raw else self._message(data))
                start = newline + 2
                continue
            if buffer.startswith(b"event: ", start):
                # Typed streams (Responses, Anthropic): "event: NAME", "data: JSON", a blank line.
                second = find(b"\n", newline + 1)
                if (
                    second >= 0
                    and second + 1 < size
                    and buffer[second + 1] == 10
                    and buffer.startswith(b"data: ", newline + 1)
                ):
                    events.append(self._typed(buffer[start + 7 : newline], buffer[newline + 7 : second], raw))
                    start = second + 2
                    continue
            end = find(b"\n\n", start)
            if end < 0:
                break  # the rest is an unfinished event
            lines = buffer[start:end].split(b"\n")
            lines.append(b"")  # the blank line that ends the event
            events.extend(self._process(lines, raw))
            start = end + 2
        return self._ended(buffer, start, events, raw)

    def _ended(self, buffer: bytes, start: int, events: list[Any], raw: bool) -> list[Any]:
        # What follows the events taken (buffer[start:], no blank line in it) is kept for the next
        # read. Its complete lines (an unfinished event) are taken now, so the tail is one partial
        # line again (no rescans: a huge event fed in small reads stays linear).
        tail = buffer[start:] if start else buffer
        newline = tail.find(10)
        if newline >= 0 and tail.startswith(b"event: ") and tail.find(10, newline + 1) < 0:
            # Typed streams: a read often ends in an event's data line, its "event:" line
            # complete. What _process would do with that one line: set the event type.
            self._event_type = tail[7:newline]
            tail = tail[newline + 1 :]
        elif newline >= 0:
            lines = tail.split(b"\n")
            tail = lines.pop()
            events.extend(self._process(lines, raw))
        self._tail = tail
        if len(tail) > 65536:  # (a cheap test first: only a long partial line can cross the bound)
            self._check_size(len(tail) + self._data_size)
        return events

    def _typed(self, name: bytes, data: bytes, raw: bool) -> RawEvent:
        # A two-line "event: NAME" + "data: DATA" event, as _process + _dispatch would hand it out.
        if not name or name == b"message":
            return data if raw else self._message(data)
        return _new_event(
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
        return _new_event(
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
        return _new_event(
            ServerSentEvent,
            (
                joined.decode("utf-8", "replace"),
                event_type.decode("utf-8", "replace") if event_type else "message",
                self.last_event_id,
                self.retry,
            ),
        )


def decode_all(body: bytes) -> list[ServerSentEvent]:
    """Decode a whole captured body at once (replay, tests, ``runner parse``)."""
    decoder = SSEDecoder()
    events = decoder.feed(body)
    events.extend(decoder.close())
    return events


def _crlf_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The data of the single-line ``data: X`` CRLF events that open ``buffer``, and what follows them.

    ``buffer`` starts at a line start with no event half-built. Split at ``\r\n\r\ndata: ``: the
    pieces before the first one holding a CR or LF are each exactly ``data: X\r\n\r\n`` (the
    separators are their only line ends), so each is one event; the rest goes through the line rules.
    """
    last = buffer.rfind(b"\r\n\r\n")
    if last < 0:
        return [], buffer
    pieces = buffer[6:last].split(b"\r\n\r\ndata: ")
    for index, piece in enumerate(pieces):
        if 10 in piece or 13 in piece:
            del pieces[index:]
            return pieces, buffer[10 * len(pieces) + sum(map(len, pieces)) :]
    return pieces, buffer[last + 4 :]
