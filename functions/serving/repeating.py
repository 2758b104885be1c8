"""A daemon thread that runs one step now, then every `every_seconds` (or at once when woken),
until stopped: how the follower and the registry listing keep serving state fresh off the
request path."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Repeating:
    def __init__(self, name: str, step: Callable[[], None], every_seconds: float) -> None:
        self.step = step
        self.every_seconds = every_seconds
        self.first_done = threading.Event()  # set after the first step, whatever its outcome
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run the next step now rather than at the end of the interval."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.step()  # never raises: each step catches, logs and records its own failures
            self.first_done.set()
            self._wake.wait(self.every_seconds)
            self._wake.clear()
