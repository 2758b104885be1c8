"""Every inference is bounded in time. A run that goes on past its bound is ended by onnxruntime
itself (`RunOptions.terminate`, set by one watchdog thread per process) and the request gets 503,
instead of holding a thread, a core and its client for as long as the model likes (a Loop whose
trip count comes from a pixel spun for 28 s a request, and froze /api/health meanwhile).

The bound is on the CPU time the run spends on its own thread (the app's sessions have one
intra-op thread: onnxruntime runs every kernel on the calling thread), checked at the wall-clock
deadline. A run that was only kept waiting for a core, on an instance busy with other requests,
is given the wall time it needs for the CPU it has not spent yet: load alone never ends a run,
and never counts against the model. A hard wall-clock limit (WALL_LIMIT_FACTOR times the bound,
at least MIN_WALL_LIMIT_SECONDS) ends any run, starved or not: a last resort, answered 503 too,
but not held against the model.

On the request's path this costs a RunOptions, one read of the thread's CPU clock and two
writes to the thread's own slot, no lock (docs/benchmarks.md, "Bounds on every inference"). The
watchdog thread looks at the slots at the earliest deadline, and at
least every MIN_BOUND_SECONDS while a run is in flight; it sleeps while none is.

onnxruntime looks at `terminate` between kernels and between the iterations of a Loop: a single
kernel that runs long by itself (a MatMul of huge sizes, a ConstantOfShape of 1 GiB) ends at its
own end, and the run stops there. Refusing such graphs is the gate's graph rule.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from functions.model_contract import InferenceTimeout, ModelOutputs, run_inference

# One run may spend BOUND_FACTOR times the model's single-image latency per image in the batch,
# in CPU seconds, at least MIN_BOUND_SECONDS and at most MAX_BOUND_SECONDS. The latency is the
# larger of the gate's median (current.json's `gate.median_latency_ms`) and the CPU time this
# instance measured when it loaded the model. The bundled network: 0.08 ms a single image, so
# 50 ms for one image (600 times what it needs) and 0.4 s for a batch of 256 (about 28 times its
# 14 ms: a batch costs less per image than single images, so the factor is a floor for it too).
# 20 leaves room for a busy instance's slower CPU time (shared caches, a lower clock) and for the
# gate's figure being taken on another machine; a version that works must never be ended, as
# three ended runs take it out of service. The gate allows a median of 25 ms: such a model may
# take 0.5 s for one image and 10 s (the ceiling) for 256.
BOUND_FACTOR = 20.0
MIN_BOUND_SECONDS = 0.05
MAX_BOUND_SECONDS = 10.0
# Any run ends after this many times its bound in wall-clock time (and at least this long),
# whatever CPU it had: a last resort, for a run that spends its time off its own thread. A run
# only kept waiting for a core by a busy instance is let finish well before that.
WALL_LIMIT_FACTOR = 10.0
MIN_WALL_LIMIT_SECONDS = 30.0
# While a model is being loaded (warm-up, its latency measured), before its own bound is known:
# the gate refuses a single run over 1 s, and warm-up runs batches of 1 and 8.
LOAD_BOUND_SECONDS = 2.0
# At its deadline, a run that has spent this share of its CPU bound has had its time.
CPU_SPENT = 0.9
# A starved run is looked at again after the CPU it has left, and no sooner than this.
RECHECK_SECONDS = 0.005


@dataclass(frozen=True)
class RunBound:
    """How much CPU one run of a model may spend: `per_image_seconds` times the images in the
    batch, within [floor, ceiling]."""

    per_image_seconds: float
    floor: float = MIN_BOUND_SECONDS
    ceiling: float = MAX_BOUND_SECONDS
    gate_latency_ms: float | None = None
    measured_latency_ms: float | None = None

    @classmethod
    def loading(cls) -> RunBound:
        return cls(0.0, LOAD_BOUND_SECONDS, LOAD_BOUND_SECONDS)

    @classmethod
    def from_latency(cls, gate_ms: float | None, measured_ms: float | None) -> RunBound:
        known = [ms for ms in (gate_ms, measured_ms) if ms is not None]
        latency_ms = max(known) if known else MAX_BOUND_SECONDS * 1e3 / BOUND_FACTOR
        return cls(
            BOUND_FACTOR * latency_ms / 1e3,
            gate_latency_ms=gate_ms,
            measured_latency_ms=measured_ms,
        )

    def seconds(self, images: int) -> float:
        bound = self.per_image_seconds * images
        return self.floor if bound < self.floor else self.ceiling if bound > self.ceiling else bound

    def describe(self) -> dict[str, object]:
        return {
            "gate_latency_ms": self.gate_latency_ms,
            "measured_latency_ms": self.measured_latency_ms,
            "single_image_ms": round(self.seconds(1) * 1e3, 3),
            "batch_of_256_ms": round(self.seconds(256) * 1e3, 3),
        }


class _Slot:
    """One thread's run in flight, if any: `run` is replaced whole (a tuple) and cleared when
    the run ends, so the watchdog always reads one run's fields, never a mix of two."""

    __slots__ = ("__weakref__", "clock", "run")

    def __init__(self, clock: int | None) -> None:
        self.clock = clock
        self.run: tuple | None = None


# A run, as its slot holds it.
OPTIONS, DEADLINE, BOUND, STARTED, CLOCK, CPU_STARTED, ENDED = range(7)


class Watchdog:
    """Ends the runs that outlive their bound. One per process (`WATCHDOG`); its thread starts
    with the first run. Each thread that runs inferences has a slot for its run in flight; the
    watchdog looks at the slots at the earliest deadline, and at least every MIN_BOUND_SECONDS
    while a run is in flight (a run that starts meanwhile has a later deadline than that), and
    sleeps while none is."""

    def __init__(self) -> None:
        self._slots: weakref.WeakSet[_Slot] = weakref.WeakSet()  # a dead thread's goes
        self._lock = threading.Lock()
        self._local = threading.local()
        self._wake = threading.Event()
        self._asleep = True  # nothing in flight at its last look: a new run must wake it
        self._thread: threading.Thread | None = None
        self.looks = 0  # times the thread looked at the slots

    def run(
        self,
        session: ort.InferenceSession,
        images: np.ndarray,
        cpu_seconds: float,
    ) -> ModelOutputs:
        """The session's outputs for `images`, or InferenceTimeout once the run has spent
        `cpu_seconds` of CPU (or WALL_LIMIT_FACTOR times that in wall-clock time)."""
        try:
            slot = self._local.slot
        except AttributeError:
            slot = self._new_slot()
        options = ort.RunOptions()
        # The app logs a failed run itself, with the request: not onnxruntime's line on stderr.
        options.log_severity_level = 4
        clock = slot.clock
        started = time.monotonic()
        cpu_started = 0.0 if clock is None else time.clock_gettime(clock)
        ended: list[tuple[bool, float, float]] = []
        run = (options, started + cpu_seconds, cpu_seconds, started, clock, cpu_started, ended)
        slot.run = run
        if self._asleep or cpu_seconds < MIN_BOUND_SECONDS:
            self._wake.set()
        try:
            return run_inference(session, images, options)
        except Exception as error:
            if not ended:
                raise
            starved, cpu, wall = ended[0]
            raise InferenceTimeout(
                f"the run of {len(images)} image(s) was ended after {cpu * 1e3:.0f} ms of CPU "
                f"({wall * 1e3:.0f} ms) by its bound of {cpu_seconds * 1e3:.0f} ms of CPU"
                + (" (it was waiting for a core: the instance is busy)" if starved else ""),
                starved=starved,
            ) from error
        finally:
            slot.run = None

    def _new_slot(self) -> _Slot:
        slot = self._local.slot = _Slot(_thread_cpu_clock())
        with self._lock:
            self._slots.add(slot)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="inference-watchdog", daemon=True
                )
                self._thread.start()
        return slot

    def _watch(self) -> None:
        while True:
            self.looks += 1
            self._asleep = True  # before looking: a run that starts now wakes the next wait
            now = time.monotonic()
            with self._lock:
                slots = list(self._slots)
            next_look = math.inf
            for slot in slots:
                run = slot.run
                if run is not None:
                    next_look = min(next_look, self._look_at(run, now))
            if next_look < math.inf:
                self._asleep = False
                self._wake.wait(min(next_look, now + MIN_BOUND_SECONDS) - now)
            else:
                self._wake.wait()
            self._wake.clear()

    def _look_at(self, run: tuple, now: float) -> float:
        """End `run` if it has had its time; when to look at it again (inf: ended)."""
        if run[ENDED]:
            return math.inf
        if now < run[DEADLINE]:
            return run[DEADLINE]
        bound, clock, wall = run[BOUND], run[CLOCK], now - run[STARTED]
        try:
            cpu = wall if clock is None else time.clock_gettime(clock) - run[CPU_STARTED]
        except OSError:  # the thread is gone: so is the run
            return math.inf
        wall_limit = max(WALL_LIMIT_FACTOR * bound, MIN_WALL_LIMIT_SECONDS)
        if cpu < CPU_SPENT * bound and wall < wall_limit:
            return now + min(wall_limit - wall, max(RECHECK_SECONDS, bound - cpu))
        run[ENDED].append((cpu < CPU_SPENT * bound, cpu, wall))
        run[OPTIONS].terminate = True  # onnxruntime stops at the next kernel or Loop iteration
        return math.inf


def _thread_cpu_clock() -> int | None:
    """The calling thread's CPU clock, which other threads can read (Linux); None elsewhere,
    where runs are bounded by wall-clock time alone."""
    try:
        return time.pthread_getcpuclockid(threading.get_ident())
    except (AttributeError, OSError):
        return None


WATCHDOG = Watchdog()


def bounded_run(
    session: ort.InferenceSession, images: np.ndarray, cpu_seconds: float
) -> ModelOutputs:
    return WATCHDOG.run(session, images, cpu_seconds)
