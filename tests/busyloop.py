"""A task that keeps its trio loop busy, as a saturated runner does, for the loop-lag tests."""

from __future__ import annotations

import time

import trio


async def hog(slice_s: float) -> None:
    """Keep the caller's loop busy the way a saturated runner does: long task steps, brief yields."""
    while True:
        end = time.perf_counter() + slice_s
        while time.perf_counter() < end:
            pass
        await trio.lowlevel.checkpoint()
