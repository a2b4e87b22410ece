"""What the simulator remembers between requests: the log of requests served (what tests read off a
``SimulatorHandle``), when each stream's first token went out (what timing benchmarks compare a client's
TTFT against), and the attempt count of each request key (for scripted faults). All are bounded.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterator

# The log keeps the most recent requests whole (about 2.5 KB each, headers and body included) and
# only counts the older ones: the in-process simulator serves every unit of a run, and a run may have
# millions. Tests read a few requests back; the bench reads counts.
MAX_ENTRIES: Final = 1_000
# Scripted faults count attempts per request key. A client retries within seconds, while a long benchmark
# or a shared `runner simulate` sees millions of distinct requests: remembering the most recent keys keeps
# every retry's count right in bounded memory (about 200 bytes a key).
MAX_KEYS: Final = 100_000
# First-token send times, by response id: a benchmark of 1,000 concurrent streams (and its warm-up)
# reads every one back after the run; about 100 bytes each.
MAX_SEND_TIMES: Final = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedRequest:
    """One request as the simulator saw it (credentials stripped from ``headers``)."""

    seq: int
    method: str
    path: str
    dialect: str | None
    headers: dict[str, str]
    body: Any  # the parsed JSON, or None
    fingerprint: str
    attempt: int  # 1-based, per fingerprint
    fault: str  # "ok", "http_429:ra=2", "close_abrupt:3", ...
    time: float  # trio.current_time() when the request was read


class ServedLog:
    """The in-memory log of requests served, in arrival order, keeping the latest ``capacity`` whole.

    ``len()`` counts every request served and ``faults`` counts them by fault name; iteration,
    indexing, ``entries`` and ``attempts`` see the retained (most recent) ones.
    """

    def __init__(self, capacity: int = MAX_ENTRIES, send_times: int = MAX_SEND_TIMES) -> None:
        self.capacity = capacity
        self._entries: deque[ServedRequest] = deque(maxlen=capacity)
        self._served = 0
        self.faults: Counter[str] = Counter()  # requests served per fault name ("ok", "http_401", ...)
        self._first_tokens: OrderedDict[str, tuple[float, float]] = OrderedDict()  # id: (sent, received)
        self._send_times = send_times
        # Responses being sent right now, and the most at any moment: what a client's concurrency
        # limit (across all its processes) must keep under.
        self.in_flight = 0
        self.peak_in_flight = 0

    def response_started(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def response_ended(self) -> None:
        self.in_flight -= 1

    def __len__(self) -> int:
        return self._served

    def __iter__(self) -> Iterator[ServedRequest]:
        return iter(self._entries)

    def __getitem__(self, index: int) -> ServedRequest:
        return self._entries[index]

    @property
    def entries(self) -> tuple[ServedRequest, ...]:
        """A snapshot of the retained entries (the latest ``capacity``)."""
        return tuple(self._entries)

    def attempts(self, fingerprint: str) -> list[ServedRequest]:
        return [e for e in self._entries if e.fingerprint == fingerprint]

    def first_token_sent(self, response_id: str, at: float, *, received: float) -> None:
        """Note that the stream ``response_id``, whose request was read at ``received``, handed its
        first token to the kernel at ``at``.

        Both are ``time.monotonic()``, the machine's clock (not the loop's, which trio offsets per
        run), so a client in another loop, thread or process can compare its own monotonic instants.
        """
        self._first_tokens[response_id] = (at, received)
        if len(self._first_tokens) > self._send_times:
            self._first_tokens.popitem(last=False)

    def first_token_at(self, response_id: str) -> float | None:
        """When the stream ``response_id`` (the completion id its client saw) sent its first token, if
        it is among the latest ``MAX_SEND_TIMES`` streams that sent one."""
        found = self._first_tokens.get(response_id)
        return found[0] if found is not None else None

    def first_token_delay(self, response_id: str) -> float | None:
        """Seconds from reading the request of ``response_id`` to sending its first token: the
        scripted TTFB + TTFT as delivered (a busy server delivers them late)."""
        found = self._first_tokens.get(response_id)
        return found[0] - found[1] if found is not None else None

    def record(
        self,
        *,
        method: str,
        path: str,
        dialect: str,
        headers: dict[str, str],
        body: Any,
        fingerprint: str,
        attempt: int,
        fault: str,
        time: float,
    ) -> ServedRequest:
        """Append the next entry, numbered in arrival order."""
        entry = ServedRequest(
            seq=self._served,
            method=method,
            path=path,
            dialect=dialect,
            headers=headers,
            body=body,
            fingerprint=fingerprint,
            attempt=attempt,
            fault=fault,
            time=time,
        )
        self._entries.append(entry)  # the deque drops the oldest past capacity
        self._served += 1
        self.faults[fault.partition(":")[0]] += 1
        return entry


class AttemptCounter:
    """Attempt numbers per request key, forgetting the least recently seen keys beyond ``capacity``."""

    def __init__(self, capacity: int = MAX_KEYS) -> None:
        self.capacity = capacity
        self._counts: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counts)

    def next(self, key: str) -> int:
        """Count one more attempt of ``key`` and return its 1-based number."""
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count  # re-inserted last: the most recently seen
        if len(self._counts) > self.capacity:
            self._counts.popitem(last=False)
        return count
