"""Kernel receive timestamps (Linux SO_TIMESTAMPNS): when bytes reached the socket, on the loop's clock.

A saturated trio loop reads a socket late; the kernel notes when each segment arrived, and recvmsg hands
that instant over (CLOCK_REALTIME) in its ancillary data. ``place`` turns it into the loop's clock by
its age: realtime now minus the stamp, taken off the loop's now, so a realtime step between the two can
only misplace it within the clamps its caller applies (runner/http/transport.py), never by the step.

What Linux reports (checked on loopback, kernel 6.18): the stamp of the LAST segment the read took, and
not only for the bytes read: TCP merges a segment into the unread one before it in the receive queue
(``tcp_try_coalesce``) and the merged buffer keeps the newest stamp, so a ``MSG_PEEK`` of one byte says
the same. The stamp is therefore an upper bound of the first byte's arrival, exact when nothing arrived
after it before the read (and never later than the read itself).
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from typing import TYPE_CHECKING, Final

import trio

if TYPE_CHECKING:
    from collections.abc import Sequence

# Linux's value on every architecture but a few (parisc, sparc); the socket module does not name it.
SO_TIMESTAMPNS: Final = 35
SUPPORTED: Final = sys.platform == "linux"
_TIMESPEC: Final = struct.Struct("@ll")  # struct timespec: tv_sec, tv_nsec (native longs)
# recvmsg's room for one control message holding a timespec.
ANCILLARY_BYTES: Final = socket.CMSG_SPACE(_TIMESPEC.size) if SUPPORTED else 0


def enable(sock: trio.socket.SocketType | socket.socket) -> bool:
    """Ask the kernel to stamp what ``sock`` receives; False where it cannot (then reads stay undated)."""
    if not SUPPORTED:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def loop_clock_is_real() -> bool:
    """Whether the loop's clock runs with the machine's (trio's default) rather than a test's mock clock.

    A MockClock's time has no relation to the kernel's, so a stamp cannot be placed on it. Looked up
    through ``sys.modules``: importing trio.testing costs ~0.1 s, and without it no MockClock exists.
    """
    testing = sys.modules.get("trio.testing")
    return testing is None or not isinstance(trio.lowlevel.current_clock(), testing.MockClock)


def stamp_ns(ancdata: Sequence[tuple[int, int, bytes]]) -> int | None:
    """The SO_TIMESTAMPNS stamp in recvmsg's ancillary data (realtime nanoseconds); None: there is none."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


def place(at_ns: int, now: float, realtime_ns: int) -> float:
    """A realtime stamp on the clock ``now`` is on: ``now`` less the stamp's age.

    Args:
        at_ns: the kernel's stamp, realtime nanoseconds.
        now: the loop's clock, read just after the read.
        realtime_ns: ``time.clock_gettime_ns(CLOCK_REALTIME)``, read next to ``now``.

    A stamp from the future (the realtime clock stepped back) is placed at ``now``.
    """
    age_ns = realtime_ns - at_ns
    return now - age_ns / 1e9 if age_ns > 0 else now


def realtime_ns() -> int:
    """The realtime clock, as the kernel stamps: read next to the loop's own clock."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME)
