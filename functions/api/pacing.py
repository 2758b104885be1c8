"""Spacing out answers of an endpoint that is cheap to ask and pointless to ask often.

`/api/models` changes at most every MODEL_REFRESH_SECONDS, yet a flood of it costs an instance
a core of HTTP handling and starves predictions (measured: 3,600 answers a second pushed predict
p99 to about 3x its quiet figure). Callers beyond the pace wait their turn on the event loop, which
costs nothing; one that would wait too long is refused with 429 and Retry-After."""

from __future__ import annotations

import asyncio
import math
import time

from functions.api.problems import TooManyRequests


class Pacer:
    """At most `per_second` answers a second per instance. Used from the event loop only, so
    the slot bookkeeping needs no lock."""

    def __init__(self, per_second: float, max_wait_seconds: float) -> None:
        self.interval = 1.0 / per_second
        self.max_wait_seconds = max_wait_seconds
        self._next_slot = 0.0

    async def wait_turn(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next_slot)
        wait = slot - now
        if wait > self.max_wait_seconds:
            raise TooManyRequests(
                "this endpoint is being asked too often; retry shortly",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        self._next_slot = slot + self.interval
        if wait > 0:
            await asyncio.sleep(wait)
