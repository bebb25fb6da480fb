"""The pace of a wait: how long until the next poll, and the one clock every wait reads.

The interval is a function of the time waited so far (not of a poll counter), so a rescheduled sensor or a
restarted trigger continues at the same pace: 5, 10, 20, 40 ... seconds up to the cap, i.e. polls at 0, 5, 15,
35, 75, 155, 315, 615 s: eight calls for a ten-minute sync.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_MAX_POLL_INTERVAL = 300.0
# Waits that began together (a DAG run mapped over companies) would otherwise poll in lockstep: each interval
# is stretched by up to this fraction, by an amount fixed by the wait's identity and the poll's number.
SPREAD = 0.25


class Clock:
    """Wall-clock time and sleeping, in one replaceable place (tests and the benchmark run on simulated time)."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


CLOCK = Clock()


def next_interval(poll_interval: float, max_poll_interval: float, waited: float) -> float:
    """Seconds until the next poll: doubles from ``poll_interval`` (5, 10, 20, ...) up to ``max_poll_interval``.

    After ``n`` polls ``waited`` is ``poll * (2**n - 1)`` and the next step ``poll * 2**n``.
    """
    return max(poll_interval, min(max_poll_interval, poll_interval + max(0.0, waited)))


def spread(seconds: float, seed: str, poll: int, fraction: float = SPREAD) -> float:
    """``seconds`` stretched by ``[0, fraction)`` of itself, fixed by ``seed`` and ``poll`` (no randomness)."""
    digest = hashlib.blake2b(f"{seed}#{poll}".encode(), digest_size=4).digest()
    return seconds * (1.0 + fraction * int.from_bytes(digest) / 2**32)
