"""The feeder's claimed units not yet started: claimed one wave ahead of need, so a freed slot starts
its next unit at once instead of waiting for a claim that queues behind the writer's commit.

On SQLite every database call runs on one thread (``db_limiter``); a claim made when a slot frees
waited for the writer's commit in progress (tens of ms, over 100 ms on a loaded machine), and a wave
of streams ending together started the next wave that late. Claimed ahead, units wait in memory
under this process's lease (renewed, fenced and released like any other) while the next claim refills
them in the background.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from runner.store.records import ClaimedUnit


@dataclass(slots=True)
class ClaimAhead:
    """Per provider: the units claimed and not yet started, and whether the last claim ran dry.

    ``ahead`` is how many units a provider may hold beyond its free slots: its slot count, so one
    whole wave can start the moment the previous one ends. One trio thread touches it: no locks.
    """

    ahead: Mapping[str, int]
    ready: dict[str, deque[ClaimedUnit]] = field(default_factory=dict)
    # Providers whose last claim got fewer units than asked: not asked again until a poll interval
    # passes quietly (units released by a process that stopped, or --join) or the writer flushed.
    exhausted: set[str] = field(default_factory=set)
    claiming: bool = False  # a claim is running on its thread (one at a time)

    def pop(self, provider: str) -> ClaimedUnit | None:
        """The provider's oldest claimed unit, taken out; None when it holds none."""
        units = self.ready.get(provider)
        return units.popleft() if units else None

    @property
    def held(self) -> int:
        """Units claimed and not started, all providers together."""
        return sum(len(units) for units in self.ready.values())

    def wants(self, free: Mapping[str, int], *, room: int, solo: bool) -> dict[str, int]:
        """How many units to claim per provider, given each one's free slots (after starting what
        it held) and ``room``, the slots free under the run's global cap (shared by all providers).

        Free slots come first: a claim that units will start from as soon as it returns is not made
        larger (and slower) by the lookahead, which the next claim fetches. ``solo``: this process
        is alone on the run; with peers it claims no further ahead than its free slots, so it never
        sits on units another process could be running.
        """
        wants: dict[str, int] = {}
        for name, provider_free in free.items():
            if name in self.exhausted:
                continue
            slots = min(provider_free, room)
            if slots > 0:
                wants[name] = slots
                room -= slots
            elif solo and (room := self.ahead.get(name, 0) - len(self.ready.get(name, ()))) > 0:
                wants[name] = room
        return wants

    def add(self, provider: str, units: Iterable[ClaimedUnit], *, asked: int) -> None:
        """Keep the units a claim of ``asked`` returned, in claim (unit) order."""
        got = list(units)
        if len(got) < asked:
            self.exhausted.add(provider)  # don't ask again at every finished unit, only after a poll
        self.ready.setdefault(provider, deque()).extend(got)

    def take_all(self) -> list[int]:
        """Ids of every unit held, which are no longer held (to give back to the queue)."""
        ids = [unit.id for units in self.ready.values() for unit in units]
        self.ready.clear()
        return ids
