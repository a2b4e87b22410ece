"""The arrival watch: a peek's stamp for the arming it was made for, and the loop's socket left as it was."""

from __future__ import annotations

import socket
import struct
import sys
import time
from typing import TYPE_CHECKING

import pytest

from runner.http import stamp
from runner.http.watch import ArrivalWatch

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = [
    pytest.mark.usefixtures("kernel_stamping"),
    pytest.mark.skipif(sys.platform != "linux", reason="kernel receive stamps are Linux's"),
]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A loopback TCP connection: (the reader's end, stamped and non-blocking; the server's end)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        reader = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    reader.setsockopt(socket.SOL_SOCKET, stamp.SO_TIMESTAMPNS, 1)
    reader.setblocking(False)
    yield reader, server
    reader.close()
    server.close()


@pytest.fixture
def watch() -> Iterator[ArrivalWatch]:
    watch = ArrivalWatch()
    yield watch
    watch.close()


def _wait_for(check: Callable[[], object]) -> None:
    deadline = time.monotonic() + 2
    while not check():
        assert time.monotonic() < deadline, "the watch did not peek within 2 s"
        time.sleep(0.001)


def test_a_peek_is_kept_for_the_arming_it_was_made_for(
    pair: tuple[socket.socket, socket.socket], watch: ArrivalWatch
) -> None:
    """The stamp of bytes that arrived while armed for generation 1 is generation 1's, no other's."""
    reader, server = pair
    fd = reader.fileno()
    assert watch.add(fd)
    watch.arm(fd, 1)
    sent = time.clock_gettime_ns(time.CLOCK_REALTIME)
    server.sendall(b"a")
    _wait_for(lambda: watch.stamp(fd, 1) is not None)
    at = watch.stamp(fd, 1)
    assert at is not None
    assert abs(at - sent) < 5_000_000  # the kernel's arrival, within 5 ms of the send
    assert watch.stamp(fd, 2) is None
    assert reader.recv(10) == b"a"  # a peek: the bytes are still the reader's
    watch.arm(fd, 2)
    time.sleep(0.05)
    assert watch.stamp(fd, 2) is None  # re-armed, nothing new arrived: no stamp for the next read
    watch.remove(fd)


def test_a_reset_is_left_for_the_reader(
    pair: tuple[socket.socket, socket.socket], watch: ArrivalWatch
) -> None:
    """A peek at an empty socket would take its pending error: the reader must still see the reset."""
    reader, server = pair
    fd = reader.fileno()
    assert watch.add(fd)
    watch.arm(fd, 1)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server.close()  # with a zero linger: a reset, not a clean close
    time.sleep(0.1)  # the watch's turn
    with pytest.raises(ConnectionResetError):
        reader.recv(10)
    watch.remove(fd)


def test_closing_leaves_the_descriptors_to_their_owner(
    pair: tuple[socket.socket, socket.socket], watch: ArrivalWatch
) -> None:
    """``close`` stops the thread and forgets the sockets without closing them: they are the loop's."""
    reader, server = pair
    assert watch.add(reader.fileno())
    watch.arm(reader.fileno(), 1)
    watch.close()
    server.sendall(b"still open")
    time.sleep(0.05)
    assert reader.recv(100) == b"still open"


def test_a_stamp_noted_after_remove_is_no_later_connections(
    pair: tuple[socket.socket, socket.socket], watch: ArrivalWatch
) -> None:
    """The thread may note a stamp for a descriptor just after ``remove`` (it read the arming before):
    the next connection given that fd number arms with a generation no one had, so it never takes that
    stamp for its own first bytes (with a count per connection, both were generation 1)."""
    reader, _server = pair
    fd = reader.fileno()
    assert watch.add(fd)
    old = watch.new_generation()
    watch.arm(fd, old)
    watch.remove(fd)
    watch._stamps[fd] = (old, 123)  # (the late note the thread may make: a race no test can time)
    assert watch.add(fd)  # the same number, a new connection
    new = watch.new_generation()
    watch.arm(fd, new)
    assert new != old
    assert watch.stamp(fd, new) is None
    watch.remove(fd)
