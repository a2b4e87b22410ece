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

from typing import Any, Literal, overload

from runner.wire.events import (
    DATA_JOINER,
    RawEvent,
    ServerSentEvent,
    TypedRun,
    as_event,
    new_event,
    single_events,
)
from runner.wire.framing import TYPED_SEPARATOR, crlf_events, data_run, typed_run
from runner.wire.lines import MAX_EVENT_BYTES, LineDecoder

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


class SSEDecoder(LineDecoder):
    """Incremental decoder. Feed it every read with ``feed``; call ``close`` at EOF.

    Whole events are read straight from the buffer where they take a common shape (runner.wire.framing);
    the rest goes through the line rules (runner.wire.lines), which define the result. Attributes:
    see ``LineDecoder``.
    """

    __slots__ = ()

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
        # Fast paths: the read is exactly one single-line event (one event per read, the common
        # case for slow LLM streams), with nothing carried from the last read. The same result as
        # the general path (_feed), in a few C calls and without a second Python call per read.
        # Slices, ``in`` (a memchr) and partition (METH_O) only: bytes.find and startswith parse
        # their arguments as a tuple, and cost several times as much on a read this size.
        if not self._tail and not self._data and not self._event_type and chunk[-1:] == b"\n":
            if len(chunk) > self.max_event_bytes:
                return self._checked(self._feed(chunk, True))
            head = chunk[:6]
            if head == b"data: ":
                ending = chunk[-4:]
                if ending[2:] == b"\n\n":
                    data = chunk[6:-2]
                    if 10 not in data and 13 not in data:
                        # "data: " DATA LF LF, DATA without line ends: one line and a blank one.
                        self._at_start = self._pending_cr = False
                        return [data]
                elif ending == b"\r\n\r\n":
                    data = chunk[6:-4]
                    if 10 not in data and 13 not in data:
                        # "data: " DATA CRLF CRLF (Gemini's), the same with CRLF line ends.
                        self._at_start = self._pending_cr = False
                        return [data]
            elif head == b"event:" and chunk[6:7] == b" ":
                # One typed event (Responses, Anthropic) as a TypedRun of one (take_typed).
                taken = self.take_typed(chunk)
                if taken is not None:
                    return [new_event(TypedRun, (chunk, 1, self.last_event_id, self.retry, taken))]
        elif len(chunk) > self.max_event_bytes:
            return self._checked(self._feed(chunk, True))
        elif self._event_type and not self._data:
            # Typed streams in reads cut anywhere (Responses): the last read ended after an
            # event's "event:" line, in its data line (take_run).
            run = self.take_run(chunk)
            if run is not None:
                return [run]
        elif not (self._data or self._more or self._pending_cr or self._at_start) and 13 in chunk:
            # CRLF streams in reads cut anywhere (Gemini's): the read goes on with the data line
            # the last one ended in (no event type here: the branch above has those). What _feed
            # does when the whole events that open the buffer leave only a partial line (nearly
            # always), without its Python call; anything else, _feed.
            buffer = self._tail + chunk if self._tail else chunk
            if buffer[:6] == b"data: ":
                datas, rest = crlf_events(buffer)
                if 13 not in rest and 10 not in rest:
                    self._tail = rest
                    if len(rest) > 65536:  # (as _ended: only a long partial line can cross it)
                        self._check_size(len(rest))
                    events: list[Any] = datas  # (a list of bytes is a list of RawEvent; list is invariant)
                    return events
        return self._feed(chunk, True)

    def take_run(self, chunk: bytes) -> TypedRun | None:
        """``feed_raw``'s answer for ``chunk`` when it is one TypedRun and a partial line, taken; else None.

        Typed streams (Responses) in reads cut anywhere: the read goes on with an event the last one
        ended in (in its "event:" line, or after it: then the type is carried), and up to its last
        blank line it is whole two-line blocks, then at most a part of the next event's "event:"
        line, or that line and a part of its data line. Then the read is consumed as ``feed_raw``
        consumes it, and the run it hands out is returned, built in a few C calls and one Python
        call (a dialect's hot path: ``OpenAIResponsesAccumulator.feed_read``). Else None, and
        nothing was consumed: feed the read to ``feed_raw``.
        """
        if self._data or self._more or self._pending_cr or self._at_start or 13 in chunk:
            return None
        if len(chunk) > self.max_event_bytes:
            return None  # (feed_raw checks the size of what it hands out)
        event_type = self._event_type
        if event_type:
            # (_tail never holds a CR or LF: the buffer is LF-only, its first line the carried one)
            buffer = b"".join((b"event: ", event_type, b"\n", self._tail, chunk))
            head = len(event_type) + 7
        else:
            buffer = self._tail + chunk if self._tail else chunk
            if buffer[:7] != b"event: ":
                return None
            head = buffer.find(10)
        last = buffer.rfind(b"\n\n")
        if last < head or buffer[head + 1 : head + 7] != b"data: ":
            return None
        # (typed_run, inline: one Python call less per read on the hot path)
        datas, joins = TYPED_SEPARATOR.subn(DATA_JOINER, buffer[head + 7 : last])
        if 10 in datas:
            return None
        # What follows the last blank line: as _ended reads it, when that leaves no event behind.
        tail = buffer[last + 2 :]
        newline = tail.find(10)
        if newline >= 0:
            if tail[:7] != b"event: " or tail.find(10, newline + 1) >= 0:
                return None
            self._event_type = tail[7:newline]
            tail = tail[newline + 1 :]
        else:
            self._event_type = b""
        self._tail = tail
        if len(tail) > 65536:  # (as _ended)
            self._check_size(len(tail))
        return new_event(TypedRun, (buffer[: last + 2], joins + 1, self.last_event_id, self.retry, datas))

    def take_typed(self, chunk: bytes) -> bytes | None:
        """The DATA of ``chunk`` when it is exactly one ``event: NAME\\ndata: DATA\\n\\n`` block, taken.

        What a typed stream's server flushing each event sends (one event per read). Only when nothing
        is carried from earlier reads, no line end hides in NAME or DATA and the event is within the
        bound: then the read is consumed exactly as ``feed_raw`` consumes it (which would hand it out
        as ``TypedRun(chunk, 1, last_event_id, retry, DATA)``) and DATA is returned. Else None, and
        nothing was consumed: feed the read to ``feed_raw``. One call and no TypedRun for a
        dialect's hot path (``OpenAIResponsesAccumulator.feed_read``).
        """
        if self._tail or self._data or self._event_type or chunk[:7] != b"event: ":
            return None
        # The first "\ndata: " ends the event line only if NAME holds no LF.
        line, found, rest = chunk.partition(b"\ndata: ")
        if found and rest[-2:] == b"\n\n" and 10 not in line and 13 not in chunk:
            data = rest[:-2]
            if 10 not in data and len(chunk) <= self.max_event_bytes:
                # (a read opening with "event: " holds no BOM, and no LF for a carried CR to pair with)
                self._at_start = self._pending_cr = False
                return data
        return None

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
                head, buffer = crlf_events(buffer)
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
            pieces, start = data_run(buffer, last)
            # (list[Any]: a list of bytes is a list of RawEvent, but list is invariant)
            payloads: list[Any] = pieces
            scan = start < last + 2  # (some block is not such an event: read on from it)
            events = payloads if raw else [self._message(data) for data in payloads]
        elif last >= 0 and buffer.startswith(b"event: "):
            # The same for typed streams: "event: NAME\ndata: DATA\n\n" blocks.
            head = buffer.find(10)  # the end of the first "event: NAME" line
            if raw and buffer.startswith(b"data: ", head + 1):
                found = typed_run(buffer, head, last)
                if found is not None:
                    run = (buffer[: last + 2], found[1], self.last_event_id, self.retry, found[0])
                    return self._ended(buffer, last + 2, [new_event(TypedRun, run)], raw)
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


def decode_all(body: bytes) -> list[ServerSentEvent]:
    """Decode a whole captured body at once (replay, tests, ``runner parse``)."""
    decoder = SSEDecoder()
    events = decoder.feed(body)
    events.extend(decoder.close())
    return events
