"""/api/health sampled from a process of its own, so that the soak's attacking clients cannot
delay the measurement: what is measured is the host's answer time, queueing included."""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import queue
import time
from collections import Counter

import numpy as np

LOOPBACK = "127.0.0.1"
START_SECONDS = 60


class HealthProbe:
    """GETs /api/health every `interval` while in a `with` block; a probe without an answer in
    `timeout` counts as a failure and as `timeout` seconds."""

    def __init__(self, port: int, timeout: float, interval: float = 0.2) -> None:
        self.port, self.timeout, self.interval = port, timeout, interval
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.storage_reachable: Counter[str] = Counter()
        # "spawn": a fresh interpreter, not a fork of a process with threads and an event loop.
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self._results = context.Queue()
        self._process = context.Process(
            target=probe_health,
            args=(port, timeout, interval, self._ready, self._stop, self._results),
            name="health-probe",
            daemon=True,
        )

    def __enter__(self) -> HealthProbe:
        self._process.start()
        if not self._ready.wait(START_SECONDS):
            self._process.kill()
            raise RuntimeError("the health probe process did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        try:
            latencies, statuses, reachable = self._results.get(timeout=self.timeout + 10)
        except queue.Empty:  # the probe died: its figures are lost, and the report says so
            latencies, statuses, reachable = [], {"probe lost": 1}, {}
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
        self.latencies = latencies
        self.statuses = Counter(statuses)
        self.storage_reachable = Counter(reachable)

    @property
    def failures(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "200")

    @property
    def p99(self) -> float:
        return float(np.percentile(self.latencies, 99)) if self.latencies else float("inf")


def probe_health(port, timeout, interval, ready, stop, results) -> None:  # noqa: PLR0917
    """The probe process: sample until `stop`, then put (latencies, statuses, reachable)."""
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    reachable: Counter[str] = Counter()
    ready.set()
    while not stop.wait(interval):
        started = time.perf_counter()
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
        try:
            connection.request("GET", "/api/health")
            answer = connection.getresponse()
            document = answer.read()
            status = str(answer.status)
        except TimeoutError:
            status, document = "timeout", b""
        except (OSError, http.client.HTTPException):
            status, document = "error", b""
        finally:
            connection.close()
        latencies.append(min(time.perf_counter() - started, timeout))
        statuses[status] += 1
        with contextlib.suppress(ValueError, AttributeError):
            reachable[str((json.loads(document).get("storage") or {}).get("reachable"))] += 1
    results.put((latencies, dict(statuses), dict(reachable)))
