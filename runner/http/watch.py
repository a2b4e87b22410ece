"""A thread that notes a socket's kernel stamp as soon as bytes arrive, for reads a busy loop makes late.

Linux stamps each TCP segment on arrival, but TCP merges a segment into the unread one before it and the
merged buffer keeps the newest stamp (runner.http.stamp): a loop that reads a first token after the next
token arrived reads the next token's stamp. This thread waits in its own epoll (without the GIL) on the
sockets a reader is dating, and peeks at the first unread byte when they become readable: its stamp is
then still the first segment's, as long as the thread got the GIL before the next segment arrived
(CPython hands it over within its 5 ms switch interval, whatever the loop is doing).

It runs no trio code and touches the sockets only with ``MSG_PEEK``: the loop's reads are unchanged. Each
arming carries a generation number, so a stamp peeked after the loop already read those bytes (a race the
loop may win) is never taken for the next read's.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import select
import socket
import struct
import termios
import threading
from typing import Final

from runner.http import stamp

_PEEK_FLAGS: Final = socket.MSG_PEEK | socket.MSG_DONTWAIT
# A reset or an error: the socket's pending error is the loop's to read (a peek at an empty socket
# would take it, and the loop would then see a clean close instead of ECONNRESET).
_TROUBLE: Final = select.EPOLLERR | select.EPOLLHUP
_INT: Final = struct.Struct("i")


class ArrivalWatch:
    """Sockets a reader is dating, watched from one daemon thread (started at the first ``add``).

    The owner (runner.http.pool.Pool) calls ``remove`` before it closes a socket, and ``close`` at the
    end; every method but the thread's own runs on the loop's thread. A request still in flight when
    its pool closes keeps calling in: after ``close``, nothing is watched and nothing restarts.
    """

    def __init__(self) -> None:
        self._epoll: select.epoll | None = None
        self._wake = -1  # an eventfd in the epoll: written by ``close`` to stop the thread
        self._thread: threading.Thread | None = None
        # fd -> a socket object over the loop's own descriptor (no dup: no extra descriptor per
        # connection), detached, never closed, by ``remove``.
        self._sockets: dict[int, socket.socket] = {}
        self._armed: dict[int, int] = {}  # fd -> the generation its current arming is for
        self._stamps: dict[int, tuple[int, int]] = {}  # fd -> (generation, realtime ns of the stamp)
        self._keeper: socket.socket | None = None
        self._closed = False
        # One numbering for every socket: the thread may note a stamp for a descriptor just after
        # ``remove`` (it read the arming before), and a new connection given the same fd number
        # must never take it for its own, which a count per connection (1, 2, ...) would allow.
        self._generations = itertools.count(1)

    def new_generation(self) -> int:
        """A generation number for ``arm`` that no earlier arming of any socket had."""
        return next(self._generations)

    def keep_stamping(self) -> None:
        """Hold one stamping socket open until ``close``, before the first connection needs stamps.

        Linux stamps arriving packets only while some socket asks; when the first one asks, it turns
        stamping on from a workqueue, later (checked: a response head 2 ms after the connect could
        come unstamped), and it turns it off again when the last one closes. Held for the pool's life,
        it is on by the time a connection's first bytes come, and stays on between connections.
        """
        if self._keeper is not None or self._closed:
            return
        keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if not stamp.enable(keeper):
            keeper.close()
            return
        self._keeper = keeper

    def add(self, fd: int) -> bool:
        """Watch ``fd`` (disarmed until ``arm``); False when it cannot (reads are then dated without it)."""
        if self._closed:
            return False
        if self._epoll is None:
            try:
                self._start()
            except OSError:
                return False
        assert self._epoll is not None
        sock = socket.socket(fileno=fd)
        try:
            self._epoll.register(fd, 0)
        except OSError:
            sock.detach()
            return False
        self._sockets[fd] = sock
        return True

    def arm(self, fd: int, generation: int) -> None:
        """Peek at ``fd`` once bytes are there; the stamp is kept for ``generation``."""
        if self._epoll is None:  # closed under a reader still dating: its reads go undated
            return
        self._armed[fd] = generation
        # Never raises for a socket its owner has not closed (add registered it); a failed arming only
        # leaves the next read dated by its own stamp.
        with contextlib.suppress(OSError):
            self._epoll.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)

    def disarm(self, fd: int) -> None:
        """Stop peeking at ``fd`` (its reader has the instants it wanted)."""
        if self._epoll is None:  # closed meanwhile: nothing is watched any more
            return
        self._armed.pop(fd, None)
        self._stamps.pop(fd, None)
        with contextlib.suppress(OSError):
            self._epoll.modify(fd, 0)

    def stamp(self, fd: int, generation: int) -> int | None:
        """The realtime stamp peeked for ``generation`` (None: not peeked yet, or a later arming's)."""
        got = self._stamps.get(fd)
        return got[1] if got is not None and got[0] == generation else None

    def remove(self, fd: int) -> None:
        """Forget ``fd``; called before the descriptor is closed (its number may be reused then)."""
        sock = self._sockets.pop(fd, None)
        if sock is None:
            return
        self._armed.pop(fd, None)
        self._stamps.pop(fd, None)
        assert self._epoll is not None
        with contextlib.suppress(OSError):  # registered in add, and still open: never raises
            self._epoll.unregister(fd)
        sock.detach()  # the descriptor is the loop's: never closed from here

    def close(self) -> None:
        """Stop the thread and forget every socket (the descriptors stay the loop's)."""
        self._closed = True
        if self._thread is not None:
            os.eventfd_write(self._wake, 1)
            self._thread.join()
            self._thread = None
        for fd in list(self._sockets):
            self.remove(fd)
        if self._epoll is not None:
            self._epoll.close()
            os.close(self._wake)
            self._epoll = None
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    def _start(self) -> None:
        epoll = select.epoll()
        try:
            wake = os.eventfd(0, os.EFD_CLOEXEC)
            epoll.register(wake, select.EPOLLIN)
        except OSError:
            epoll.close()
            raise
        self._epoll, self._wake = epoll, wake
        # A daemon thread, not a trio task: it must run while the loop is busy, and a process that
        # never closes its transport must still exit. ``close`` joins it.
        self._thread = threading.Thread(
            target=self._run, args=(epoll, wake), name="runner-arrivals", daemon=True
        )
        self._thread.start()

    def _run(self, epoll: select.epoll, wake: int) -> None:
        ancillary = stamp.ANCILLARY_BYTES
        sockets, armed, stamps = self._sockets, self._armed, self._stamps
        while True:
            for fd, events in epoll.poll():
                if fd == wake:
                    return
                if events & _TROUBLE or not _queued(fd):
                    continue
                # Read before the peek: a re-arming for a later read after this makes the peek's
                # stamp (of bytes the loop has not read yet) that later read's, never this one's.
                generation = armed.get(fd)
                sock = sockets.get(fd)
                if generation is None or sock is None:
                    continue
                try:
                    _data, ancdata, _flags, _address = sock.recvmsg(1, ancillary, _PEEK_FLAGS)
                except OSError:  # read meanwhile (EAGAIN), or closed: nothing to note
                    continue
                at = stamp.stamp_ns(ancdata)
                if at is not None:
                    stamps[fd] = (generation, at)


def _queued(fd: int) -> bool:
    """Whether unread bytes wait on ``fd``: only then does a peek leave the socket's error alone."""
    try:
        count: int = _INT.unpack(fcntl.ioctl(fd, termios.FIONREAD, b"\0" * _INT.size))[0]
    except OSError:  # closed meanwhile
        return False
    return count > 0
