"""More serving processes, as the Functions host starts ``FUNCTIONS_WORKER_PROCESS_COUNT`` workers.

Each extra process builds the same web app and accepts on the first process's listening sockets
(handed over when it starts), each process taking a connection only while it holds no more than
the least loaded one (local_host/balance.py), as the Functions host spreads invocations over its
workers. Only the first process runs the timers
(a timer fires once per host) and whatever the caller adds to it (the Event Grid stand-in); an
extra process stops with the first, even one killed outright.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Mapping
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path

from aiohttp import web

from local_host.balance import ConnectionShare, connection_counts
from local_host.log_output import configure_logging
from local_host.server import run, start_listening, web_app_from_settings
from local_host.settings import worker_process_count

logger = logging.getLogger(__name__)

# A fresh interpreter each (never a fork of one that has started threads and an event loop).
_SPAWN = multiprocessing.get_context("spawn")
READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 10


class ExtraProcessFailed(RuntimeError):
    """An extra process exited or did not listen in time; its log says why."""


class ExtraProcesses:
    """``count`` processes serving ``app_module`` (and ``site``) beside this one."""

    def __init__(self, count: int, app_module: str, site: Path | None) -> None:
        self.count, self.app_module, self.site = count, app_module, site
        self.processes: list[SpawnProcess] = []
        # This process's open connections, then each extra process's (local_host/balance.py).
        self.connection_counts = connection_counts(count + 1)

    def share(self, index: int) -> ConnectionShare:
        """Process ``index``'s share of the connections (0: this one)."""
        return ConnectionShare(self.connection_counts, index)

    async def start(self, sockets: list[socket.socket]) -> None:
        """Start them and return once each listens; ExtraProcessFailed if one does not."""
        readiness = []
        for index in range(1, self.count + 1):
            ready = _SPAWN.Event()
            process = _SPAWN.Process(
                target=_serve_beside_parent,
                args=(self.app_module, self.site, sockets, self.share(index), ready),
                name="local_host extra process",
            )
            # Ctrl-C reaches the whole process group: only this process handles it, and stops
            # the others with SIGTERM once it has stopped listening (requests in flight finish).
            default_interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                process.start()
            finally:
                signal.signal(signal.SIGINT, default_interrupt)
            self.processes.append(process)
            readiness.append((process, ready))
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        for process, ready in readiness:
            # Polled, not waited for in a thread: a stop signal meanwhile cancels it at once.
            while not ready.is_set():
                if process.exitcode is not None:
                    raise ExtraProcessFailed(
                        f"an extra serving process exited with status {process.exitcode} "
                        "before it listened; see its log above"
                    )
                if time.monotonic() > deadline:
                    raise ExtraProcessFailed(
                        f"an extra serving process did not listen within {READY_TIMEOUT_SECONDS} s"
                    )
                await asyncio.sleep(0.05)
        for sock in sockets:
            sock.close()  # this process's copies: the children have theirs
        loop = asyncio.get_running_loop()
        for index, process in enumerate(self.processes, start=1):
            loop.add_reader(process.sentinel, self._gone, index, process)
        pids = ", ".join(str(process.pid) for process in self.processes)
        logger.info("%d processes serve the port: %d and %s", self.count + 1, os.getpid(), pids)

    def _gone(self, index: int, process: SpawnProcess) -> None:
        """An extra process exited: it takes no more connections, and the others must not wait
        for it to."""
        asyncio.get_running_loop().remove_reader(process.sentinel)
        self.share(index).not_serving()
        logger.warning("Extra process %d exited (status %s)", process.pid, process.exitcode)

    async def stop(self) -> None:
        """SIGTERM each (they finish the requests in flight), then SIGKILL the late ones."""
        loop = asyncio.get_running_loop()
        for process in self.processes:
            loop.remove_reader(process.sentinel)
        for process in self.processes:
            if process.exitcode is None:
                process.terminate()
        for process in self.processes:
            await asyncio.to_thread(process.join, STOP_TIMEOUT_SECONDS)
            if process.exitcode is None:
                logger.warning("Extra process %d did not stop; killing it", process.pid)
                process.kill()
                await asyncio.to_thread(process.join)
        self.processes.clear()


def extra_processes(
    app_module: str, site: Path | None, environ: Mapping[str, str] = os.environ
) -> ExtraProcesses | None:
    """The processes the app setting asks for beyond this one; None for one process."""
    count = worker_process_count(environ) - 1
    return ExtraProcesses(count, app_module, site) if count else None


def _serve_beside_parent(
    app_module: str,
    site: Path | None,
    sockets: list[socket.socket],
    share: ConnectionShare,
    ready: Event,
) -> None:
    """An extra process's life: the app without its timers, until SIGTERM or until the first
    process is gone."""
    configure_logging()
    web_app = web_app_from_settings(app_module, site, run_timers=False)
    run(_serve_until_stopped(web_app, sockets, share, ready))


async def _serve_until_stopped(
    web_app: web.Application, sockets: list[socket.socket], share: ConnectionShare, ready: Event
) -> None:
    runner, _ = await start_listening(web_app, "", 0, sockets=sockets, share=share)
    try:
        ready.set()
        stop, loop = asyncio.Event(), asyncio.get_running_loop()
        # SIGTERM from the first process (SIGINT is ignored here: see ExtraProcesses.start), or
        # the first process gone: its sentinel becomes readable when it exits, however it exits.
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_reader(multiprocessing.parent_process().sentinel, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
