"""One timer task that sends the paced writes of every stream a simulator serves.

A stream task that slept between its events cost a trio timer (a cancel scope, a deadline in the
heap, a ``Cancelled`` raised and caught) and two task switches per event (the wake-up, and the
checkpoint ``send_all`` yields at): about 40 us of CPU an event, so one core paced at most ~25,000
events a second. Here a stream hands its planned writes over once; the pacer keeps them in one heap
by due time, wakes when the earliest is due, and writes every due stream straight to its socket
(non-blocking ``os.write``), waking its task only at the end. The event loop's timer resolution
(epoll takes milliseconds) makes streams due within a millisecond share one wake-up.

A write the kernel does not take whole (a client that reads slowly) goes back to its task, which
sends the rest with ``send_all`` (waiting as long as it takes) before handing the stream back.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from runner.simulator.pacing import Write


class _Cursor:
    """A stream's place in its writes, while the pacer holds it."""

    __slots__ = ("error", "fd", "index", "is_dropped", "on_first_token", "rest", "wake", "writes")

    def __init__(
        self, fd: int, writes: Sequence[Write], index: int, on_first_token: Callable[[], None]
    ) -> None:
        self.fd = fd
        self.writes = writes
        self.index = index  # the next write to send
        self.on_first_token = on_first_token
        self.wake = trio.Event()
        self.rest = b""  # what the kernel did not take of the last write
        self.error: OSError | None = None
        self.is_dropped = False  # its task left (cancelled): never touch the fd again


class Pacer:
    """Run ``run`` in a nursery; each stream task calls ``play``."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Cursor]] = []
        self._order = itertools.count()  # ties in due time go in hand-over order
        self._sleep: trio.CancelScope | None = None  # set while the pacer waits for the earliest due

    async def run(self) -> None:
        """Send due writes until cancelled."""
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                cursor = heapq.heappop(heap)[2]
                if not cursor.is_dropped:
                    self._send(cursor)
                now = trio.current_time()
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._sleep:
                await trio.sleep_forever()
            self._sleep = None

    async def play(
        self, stream: trio.SocketStream, writes: Sequence[Write], on_first_token: Callable[[], None]
    ) -> None:
        """Send ``writes`` on ``stream``, each its ``delay`` after the previous one returned.

        ``on_first_token`` is called just before the write that holds the first token goes out.

        Raises:
            trio.BrokenResourceError: the client went away.
        """
        index = 0
        while index < len(writes):
            # What is due at once goes from this task: no hand-over for the head and its burst.
            while index < len(writes) and writes[index].delay <= 0:
                if writes[index].first_token:
                    on_first_token()
                await stream.send_all(writes[index].data)
                index += 1
            if index == len(writes):
                return
            cursor = _Cursor(stream.socket.fileno(), writes, index, on_first_token)
            self._hand_over(cursor, trio.current_time() + writes[index].delay)
            try:
                await cursor.wake.wait()
            finally:
                # Cancelled while the pacer held it: the stream's socket closes after this, and its
                # fd number may be reused at once; the pacer must never write to it again.
                cursor.is_dropped = True
            if cursor.error is not None:
                raise trio.BrokenResourceError("the client went away") from cursor.error
            if cursor.rest:
                await stream.send_all(cursor.rest)  # a slow reader: wait for it here
            index = cursor.index

    def _hand_over(self, cursor: _Cursor, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._order), cursor))
        if self._sleep is not None and due < self._sleep.deadline:
            self._sleep.deadline = due

    def _send(self, cursor: _Cursor) -> None:
        """Send the cursor's due write; hand it back to its task or reschedule its next write."""
        write = cursor.writes[cursor.index]
        cursor.index += 1
        if write.first_token:
            cursor.on_first_token()
        try:
            sent = os.write(cursor.fd, write.data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:  # EPIPE, ECONNRESET: the client went away
            cursor.error = exc
            cursor.wake.set()
            return
        if sent < len(write.data):
            cursor.rest = write.data[sent:]
            cursor.wake.set()
        elif cursor.index == len(cursor.writes):
            cursor.wake.set()
        else:
            due = trio.current_time() + cursor.writes[cursor.index].delay
            heapq.heappush(self._heap, (due, next(self._order), cursor))
