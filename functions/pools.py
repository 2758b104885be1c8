"""Where the app's blocking work runs: one thread pool per kind of work, so that no kind can take
the threads another needs. Every function the app declares is `async def`: the runtime's own
thread pool (PYTHON_THREADPOOL_THREAD_COUNT) serves none of them, and the event loop runs only
what answers from memory (health, models, V2 metadata) and feedback's checks of a body of at
most 64 KiB, and hands the rest to a pool here:

- `inference`: every prediction, from parsing the body (pictures decoded included) to the
  answer; as many threads as the process has cores (`INFERENCE_THREADS` sets another number):
  the work is CPU-bound, more threads would only share the same cores.
- `storage`: the feedback writes (and building their client), which wait on storage, not the
  CPU: `STORAGE_THREADS` threads, and at most `STORAGE_MAX_WAITING` writes waiting for one.
  When that many wait, a write is refused at once (503 with Retry-After) rather than queued
  without end: slow storage holds these threads only.
- `promotion`: one thread, for one trial at a time (a trial may take 1 GiB of a 2 GB instance).
  A promotion waiting for it waits on the event loop, holding no thread.

A function that hands work to a pool declares `context` and runs its call inside
`invocation(context)`: the thread is then tied to the invocation, as the runtime ties its own
threads, so that the logs written there carry the invocation's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from functions import settings
from functions.serving.errors import InferenceBusy
from functions.storage.errors import StorageUnavailable

log = logging.getLogger(__name__)

STORAGE_THREADS = 4
# Four writes at a time, each bounded by the serving read timeout (5 s): the last of eight
# waiting is answered within about 15 s even when storage hangs.
STORAGE_MAX_WAITING = 8
# Predictions waiting for an inference thread: twice the local host's connection cap, so that a
# burst the host lets in is answered (tests/api/test_http.py sends 200 at once); beyond that a
# flood gets 503 at once instead of queueing. A batch of 256 takes about 20 ms a thread: the
# last of these waits a few seconds at most.
INFERENCE_MAX_WAITING = 512

# The invocation whose work a pool thread does: its `func.Context`, set by the declared function.
_invocation: contextvars.ContextVar[Any] = contextvars.ContextVar("invocation", default=None)


@contextlib.contextmanager
def invocation(context: Any) -> Iterator[None]:
    """Within this block, work handed to a pool runs tied to `context`'s invocation."""
    token = _invocation.set(context)
    try:
        yield
    finally:
        _invocation.reset(token)


def _in_invocation[T](context: Any, function: Callable[..., T], args: tuple[Any, ...]) -> T:
    """What the runtime does for the plain functions it runs in its own pool: the thread names
    the invocation (Application Insights ties the logs written there to it)."""
    if context is None:
        return function(*args)
    storage = context.thread_local_storage
    storage.invocation_id = context.invocation_id
    try:
        return function(*args)
    finally:
        storage.invocation_id = None


class Pool:
    """A thread pool of `threads` threads (a number, or a function that reads it from the
    settings when the pool is first used, not when the app is indexed); with `max_waiting`, at
    most that many calls wait for a thread, and one more is refused with `refuse()` without
    waiting."""

    def __init__(
        self,
        name: str,
        threads: int | Callable[[], int],
        *,
        max_waiting: int | None = None,
        refuse: Callable[[], Exception] | None = None,
    ) -> None:
        self.name, self.max_waiting = name, max_waiting
        self._threads = threads
        if (max_waiting is None) != (refuse is None):
            raise ValueError(f"the {name} pool: max_waiting and refuse go together")
        self._refuse = refuse
        self._executor: ThreadPoolExecutor | None = None  # made on first use
        self._lock = threading.Lock()
        self._in_flight = 0  # running or waiting

    @property
    def threads(self) -> int:
        if callable(self._threads):
            with self._lock:
                if callable(self._threads):
                    self._threads = self._threads()
        return self._threads

    @property
    def in_flight(self) -> int:
        """Calls running or waiting for a thread."""
        return self._in_flight

    async def run[T](self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in one of the pool's threads, tied to the current invocation and
        with the caller's context variables; awaited on the event loop."""
        executor = self._executor or self._start()  # which settles `threads`
        with self._lock:
            full = self._in_flight >= self._threads + (self.max_waiting or 0)
            if self.max_waiting is not None and full:
                raise self._refuse()
            self._in_flight += 1
        call = contextvars.copy_context().run
        try:
            future = executor.submit(call, _in_invocation, _invocation.get(), function, args)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _start(self) -> ThreadPoolExecutor:
        threads = self.threads
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(threads, thread_name_prefix=f"{self.name}-pool")
            return self._executor

    def _done(self, _: Future | None) -> None:
        with self._lock:
            self._in_flight -= 1


class OneAtATime:
    """A one-thread pool whose callers wait for their turn on the event loop (an asyncio lock),
    not in a thread: any number of them waiting hold no thread at all."""

    def __init__(self, name: str) -> None:
        self.pool = Pool(name, 1)
        self.waiting = 0  # callers waiting for their turn
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()  # one lock per event loop: a lock belongs to its loop
        )

    async def run[T](self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        turn = self._turns.get(loop)
        if turn is None:
            turn = self._turns[loop] = asyncio.Lock()
        if turn.locked():
            log.info("%s waits for its turn (%d waiting)", self.pool.name, self.waiting + 1)
        self.waiting += 1
        try:
            await turn.acquire()
        finally:
            self.waiting -= 1
        try:
            return await self.pool.run(function, *args)
        finally:
            turn.release()


class Pools:
    """The app's pools: one of each kind, per process (`shared_pools`); tests make their own."""

    def __init__(
        self,
        inference_threads: int | None = None,
        storage_threads: int = STORAGE_THREADS,
        storage_max_waiting: int = STORAGE_MAX_WAITING,
    ) -> None:
        self.inference = Pool(
            "inference",
            inference_threads or settings.inference_threads,
            max_waiting=INFERENCE_MAX_WAITING,
            refuse=lambda: InferenceBusy(
                f"{INFERENCE_MAX_WAITING} predictions are waiting for a thread already"
            ),
        )
        self.storage = Pool(
            "storage",
            storage_threads,
            max_waiting=storage_max_waiting,
            refuse=lambda: StorageUnavailable(
                f"{storage_threads + storage_max_waiting} storage writes are in flight already"
            ),
        )
        self.promotion = OneAtATime("promotion")


_shared: Pools | None = None
_shared_lock = threading.Lock()


def shared_pools() -> Pools:
    """The process's pools, made on first use."""
    global _shared  # noqa: PLW0603 - one set per process, as the runtime has one pool
    with _shared_lock:
        if _shared is None:
            _shared = Pools()
        return _shared
