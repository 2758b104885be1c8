"""A served model's failures: runs the watchdog ended, answers that failed the output check, runs
that onnxruntime failed. A few in a short window mean the version is broken, not the request:
whoever serves it is told once, and stops serving it (follower.py rolls it back)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

# Three failures within a minute. One broken request is a 503 and a log line; a version that
# keeps failing is taken out of service before it answers many more. A version that works
# never fails so: its answers pass the check, and the watchdog's bound is on the CPU a run
# spends, which load cannot raise.
STRIKES_LIMIT = 3
STRIKES_WINDOW_SECONDS = 60.0


class Strikes:
    """Failures of one loaded model. `listener(reason)` is called once, on the thread of the
    failure that makes `limit` within `window_seconds`."""

    def __init__(
        self, limit: int = STRIKES_LIMIT, window_seconds: float = STRIKES_WINDOW_SECONDS
    ) -> None:
        self.limit, self.window_seconds = limit, window_seconds
        self.listener: Callable[[str], None] | None = None
        self.total = 0
        self.fired = False
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def record(self, reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.total += 1
            self._times.append(now)
            while now - self._times[0] > self.window_seconds:
                self._times.popleft()
            count = len(self._times)
            fire = not self.fired and count >= self.limit
            self.fired = self.fired or fire
        listener = self.listener
        if fire and listener is not None:
            try:  # runs while the model's own error is being raised: that one must win
                listener(f"{count} failures within {self.window_seconds:g} s, the last: {reason}")
            except Exception:
                log.exception("taking the failing model out of service failed")
