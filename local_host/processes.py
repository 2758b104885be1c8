"""More serving processes, as the Functions host starts ``FUNCTIONS_WORKER_PROCESS_COUNT`` workers.

Each extra process builds the same web app and listens on the same port: every listener sets
SO_REUSEPORT and the kernel spreads new connections among them. Only the first process runs the
timers (a timer fires once per host) and whatever the caller adds to it (the Event Grid stand-in);
an extra process stops with the first, even one killed outright.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Mapping
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from pathlib import Path

from aiohttp import web

from local_host.server import run, start_listening, wait_for_stop_signal, web_app_from_settings
from local_host.settings import configure_logging, worker_process_count

logger = logging.getLogger(__name__)

# A fresh interpreter each (never a fork of one that has started threads and an event loop).
_SPAWN = multiprocessing.get_context("spawn")
READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 10


class ExtraProcesses:
    """``count`` processes serving ``app_module`` (and ``site``) beside this one."""

    def __init__(self, count: int, app_module: str, site: Path | None) -> None:
        self.count, self.app_module, self.site = count, app_module, site
        self.processes: list[SpawnProcess] = []

    async def start(self, host: str, port: int) -> None:
        """Start them and return once each listens; a RuntimeError if one does not."""
        for _ in range(self.count):
            ready = _SPAWN.Event()
            process = _SPAWN.Process(
                target=_serve_beside_parent,
                args=(self.app_module, self.site, host, port, ready),
                name="local_host extra process",
            )
            process.start()
            self.processes.append(process)
            listening = await asyncio.to_thread(ready.wait, READY_TIMEOUT_SECONDS)
            if not listening:
                raise RuntimeError(
                    f"an extra serving process did not listen within {READY_TIMEOUT_SECONDS} s "
                    f"(exit status {process.exitcode}); see its log above"
                )
        pids = ", ".join(str(process.pid) for process in self.processes)
        logger.info("%d processes serve the port: %d and %s", self.count + 1, os.getpid(), pids)

    async def stop(self) -> None:
        """SIGTERM each (they finish the requests in flight), then SIGKILL the late ones."""
        for process in self.processes:
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
    app_module: str, site: Path | None, host: str, port: int, ready: Event
) -> None:
    """An extra process's life: the app without its timers, until a stop signal or until the
    first process is gone."""
    configure_logging()
    web_app = web_app_from_settings(app_module, site, run_timers=False)
    run(_serve_until_stopped(web_app, host, port, ready))


async def _serve_until_stopped(
    web_app: web.Application, host: str, port: int, ready: Event
) -> None:
    runner, _ = await start_listening(web_app, host, port, reuse_port=True)
    try:
        ready.set()
        parent_gone = asyncio.Event()
        # The parent's sentinel becomes readable when it exits, however it exits.
        parent = multiprocessing.parent_process()
        asyncio.get_running_loop().add_reader(parent.sentinel, parent_gone.set)
        stop_signal = asyncio.ensure_future(wait_for_stop_signal())
        gone = asyncio.ensure_future(parent_gone.wait())
        await asyncio.wait([stop_signal, gone], return_when=asyncio.FIRST_COMPLETED)
        if gone.done():
            logger.warning("The first serving process is gone; stopping")
        for task in (stop_signal, gone):
            task.cancel()
        await asyncio.gather(stop_signal, gone, return_exceptions=True)
    finally:
        await runner.cleanup()
