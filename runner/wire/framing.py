"""Pure byte scans that find whole events in a buffer of SSE bytes in a few C calls.

Each takes a buffer that starts at a line start with no event half-built, and says which events
open it, in the common shapes of LLM streams, and where the rest begins; the rest goes through the
line rules (runner.wire.lines). ``SSEDecoder`` (runner.wire.sse) drives them.
"""

from __future__ import annotations

import re
from typing import Final

from runner.wire.events import DATA_JOINER

# From the end of one data value of a typed run to the start of the next one (TypedRun.datas).
TYPED_SEPARATOR: Final = re.compile(rb"\n\nevent: [^\n]*\ndata: ")


def data_run(buffer: bytes, last: int) -> tuple[list[bytes], int]:
    """The data of the single-line ``data: X`` LF events that open ``buffer``, and where the rest starts.

    ``buffer`` starts with ``data: `` and its last blank line ends at ``last + 2``. One C call for a
    whole read of such events: ``buffer[6:last]`` split at ``\n\ndata: ``. If no piece holds an LF,
    the separators are the only LFs before ``last``, so ``buffer[:last + 2]`` is exactly
    ``data: <piece>\n\n`` once per piece: one single-line event each, and the rest starts at
    ``last + 2``. Otherwise the pieces before the first one holding an LF are such events (each
    took 6 + len(piece) + 2 bytes) and the rest starts after them.
    """
    payloads = buffer[6:last].split(b"\n\ndata: ")
    for piece in payloads:
        if 10 in piece:
            # index() finds this very piece: no earlier piece is equal, none holds an LF
            del payloads[payloads.index(piece) :]
            return payloads, 8 * len(payloads) + sum(map(len, payloads))
    return payloads, last + 2


def typed_run(buffer: bytes, head: int, last: int) -> tuple[bytes, int] | None:
    """``TypedRun.datas`` and the event count of ``buffer[:last + 2]``, or None when it is not a run.

    ``buffer`` starts with ``event: NAME`` (its LF at ``head``) then ``data: ``; its last blank line
    ends at ``last + 2``. Every ``\n\nevent: NAME\ndata: `` between two data values becomes
    DATA_JOINER in one regex pass. No LF left means every block up to ``last`` is exactly those two
    lines: one TypedRun, whatever the number of events. (One regex pass costs less CPU than a
    ``bytes.replace`` of the first block's separator, even when every NAME is the same: the
    separator's many distinct bytes defeat bytes.replace's skip table; bench_parse.py shows it.)
    """
    datas, joins = TYPED_SEPARATOR.subn(DATA_JOINER, buffer[head + 7 : last])
    if 10 in datas:
        return None
    return datas, joins + 1


def crlf_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The data of the single-line ``data: X`` CRLF events that open ``buffer``, and what follows them.

    ``buffer`` starts at a line start with no event half-built. Split at ``\r\n\r\ndata: ``: the
    pieces before the first one holding a CR or LF are each exactly ``data: X\r\n\r\n`` (the
    separators are their only line ends), so each is one event; the rest goes through the line rules.
    """
    last = buffer.rfind(b"\r\n\r\n")
    if last < 0:
        return [], buffer
    pieces = buffer[6:last].split(b"\r\n\r\ndata: ")
    joined = b"".join(pieces)  # (one copy and two memchr: cheaper than two tests per piece)
    if 10 not in joined and 13 not in joined:
        return pieces, buffer[last + 4 :]
    for index, piece in enumerate(pieces):
        if 10 in piece or 13 in piece:
            del pieces[index:]
            return pieces, buffer[10 * len(pieces) + sum(map(len, pieces)) :]
    return pieces, buffer[last + 4 :]
