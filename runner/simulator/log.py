"""What the simulator remembers between requests: the log of requests served (what tests read off a
``SimulatorHandle``) and the attempt count of each request key (for scripted faults).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Iterator

# Scripted faults count attempts per request key. A client retries within seconds, while a long benchmark
# or a shared `runner simulate` sees millions of distinct requests: remembering the most recent keys keeps
# every retry's count right in bounded memory (about 200 bytes a key).
MAX_KEYS: Final = 100_000


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
    """The in-memory log of requests served, in arrival order."""

    def __init__(self) -> None:
        self._entries: list[ServedRequest] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[ServedRequest]:
        return iter(self._entries)

    def __getitem__(self, index: int) -> ServedRequest:
        return self._entries[index]

    @property
    def entries(self) -> tuple[ServedRequest, ...]:
        """A snapshot of every entry so far."""
        return tuple(self._entries)

    def attempts(self, fingerprint: str) -> list[ServedRequest]:
        return [e for e in self._entries if e.fingerprint == fingerprint]

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
            seq=len(self._entries),
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
        self._entries.append(entry)
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
