"""The whole local stack in one command (``make run``): Azurite, the local host, Event Grid.

It starts Azurite's blob service from ``node_modules`` (data in ``.azurite/``; one already
listening on the port is used as it is), creates the container the app's Event Grid blob
trigger watches, then runs ``python -m local_host`` and the Event Grid stand-in for that
trigger. Ctrl-C or SIGTERM stops them all, and so does the local host exiting. Azurite exiting
does not: the app keeps serving without storage and Azurite is started again, with a growing
pause. Every app setting that says ``UseDevelopmentStorage=true`` is pointed at this Azurite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob.aio import BlobServiceClient
from yarl import URL

from local_host.__main__ import DEFAULT_SITE
from local_host.blob_events import SubscriptionRefused, WatchedBlobs, open_relay, watched_blobs
from local_host.server import STOP_SIGNALS
from local_host.settings import (
    APP_ROOT,
    configure_logging,
    load_function_app,
    load_local_settings,
    read_route_prefix,
)

logger = logging.getLogger("local_host.dev")

AZURITE = "Azurite"
AZURITE_BINARY = APP_ROOT / "node_modules" / ".bin" / "azurite-blob"
AZURITE_HOST = "127.0.0.1"
# Azurite's fixed development account; the key is public and documented.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
DEVELOPMENT_STORAGE = "usedevelopmentstorage=true"
HOST_CONTAINER = "azure-webjobs-hosts"  # the Functions host's own
STARTUP_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 15
# Pauses before starting an exited Azurite again double up to the last; an Azurite that stayed
# up for AZURITE_STABLE_SECONDS was healthy, so the next pause starts short again.
AZURITE_RESTART_FIRST_PAUSE_SECONDS = 1.0
AZURITE_RESTART_MAX_PAUSE_SECONDS = 60.0
AZURITE_STABLE_SECONDS = 60.0


class StackError(RuntimeError):
    """A part of the stack could not start; the message says which and why."""


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_host.dev",
        description="Run Azurite, the local Functions host and the Event Grid stand-in "
        "together; Ctrl-C stops them all.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--app", default="function_app", help="module that defines `app`")
    parser.add_argument("--host", default="localhost", help="interface the host listens on")
    parser.add_argument("--port", type=int, default=7071, help="port the host listens on")
    parser.add_argument("--azurite-port", type=int, default=10000, help="Azurite's blob port")
    parser.add_argument(
        "--azurite-dir", type=Path, default=APP_ROOT / ".azurite", help="Azurite's data folder"
    )
    parser.add_argument(
        "--blob-function",
        help="the Event Grid blob trigger to post events to; None: the app's only one",
    )
    return parser.parse_args(argv)


def azurite_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{AZURITE_HOST}:{port}/{AZURITE_ACCOUNT};"
    )


def is_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


async def create_containers(connection_string: str, containers: list[str]) -> bool:
    """Create the containers the app expects; False (with a warning) if storage is not there."""
    try:
        # Storage that is not there should not hold up the API for the SDK's 15 s retries.
        async with BlobServiceClient.from_connection_string(
            connection_string, retry_total=0, connection_timeout=3
        ) as service:
            for container in containers:
                with contextlib.suppress(ResourceExistsError):
                    await service.create_container(container)
    except (AzureError, ValueError) as error:
        logger.warning("Storage is not reachable (%s); serving without it", error)
        return False
    return True


class Stack:
    """The child processes by name, in the order they started, and how to start and stop them."""

    def __init__(self, arguments: argparse.Namespace) -> None:
        self.arguments = arguments
        self.children: dict[str, asyncio.subprocess.Process] = {}

    async def start_child(self, name: str, *command: str) -> asyncio.subprocess.Process:
        # Registered at once, so that a stop during startup stops it too; a session of its
        # own, so that Ctrl-C reaches this supervisor only and it stops the children in order.
        self.children[name] = await asyncio.create_subprocess_exec(
            *command, cwd=APP_ROOT, start_new_session=True
        )
        return self.children[name]

    async def wait_until_listening(self, name: str, host: str, port: int) -> None:
        process = self.children[name]
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_SECONDS
        while not await asyncio.to_thread(is_listening, host, port):
            if process.returncode is not None:
                raise StackError(f"{name} exited with status {process.returncode} while starting")
            if asyncio.get_running_loop().time() > deadline:
                raise StackError(f"{name} did not listen on {host}:{port} in time")
            await asyncio.sleep(0.2)

    async def start_azurite(self) -> bool:
        """Start Azurite's blob service; False when one already listens on its port."""
        port, data_dir = self.arguments.azurite_port, self.arguments.azurite_dir
        if is_listening(AZURITE_HOST, port):
            logger.info("Using the Azurite already listening on %s:%d", AZURITE_HOST, port)
            return False
        if not AZURITE_BINARY.exists():
            raise StackError(f"{AZURITE_BINARY} is missing: run `npm ci` (make setup installs it)")
        data_dir.mkdir(parents=True, exist_ok=True)
        process = await self.start_child(
            AZURITE,
            str(AZURITE_BINARY),
            *("--blobHost", AZURITE_HOST, "--blobPort", str(port), "--location", str(data_dir)),
            *("--disableTelemetry", "--skipApiVersionCheck", "--silent"),
        )
        await self.wait_until_listening(AZURITE, AZURITE_HOST, port)
        logger.info("Azurite started (pid %d) on %s:%d", process.pid, AZURITE_HOST, port)
        return True

    async def keep_azurite_running(self, containers: list[str]) -> None:
        """Start Azurite again each time it exits, until cancelled; the app serves meanwhile."""
        pause = AZURITE_RESTART_FIRST_PAUSE_SECONDS
        loop = asyncio.get_running_loop()
        while True:
            started_at = loop.time()
            status = await self.children[AZURITE].wait()
            if loop.time() - started_at >= AZURITE_STABLE_SECONDS:
                pause = AZURITE_RESTART_FIRST_PAUSE_SECONDS
            logger.warning(
                "Azurite exited with status %s; the app keeps serving without storage. "
                "Starting Azurite again in %.0f s",
                status,
                pause,
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, AZURITE_RESTART_MAX_PAUSE_SECONDS)
            try:
                if not await self.start_azurite():
                    return  # someone else's Azurite took the port: use it
            except Exception:
                # Keep trying: storage coming back is worth more than this one attempt.
                logger.exception("Azurite did not start again")
                continue
            # A killed Azurite may lose what it had not saved yet, containers included.
            connection = azurite_connection_string(self.arguments.azurite_port)
            if await create_containers(connection, containers):
                logger.info("Azurite is back, with the app's containers")

    async def stop(self) -> None:
        """SIGTERM each child, the last started first; kill what does not stop in time."""
        for child in reversed(self.children.values()):
            if child.returncode is not None:
                continue
            child.terminate()
            try:
                await asyncio.wait_for(child.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                child.kill()
                await child.wait()

    async def wait_for_an_exit(self) -> int:
        """Wait for a child other than Azurite (which is started again instead) to exit: 1."""
        exits = {
            asyncio.create_task(child.wait()): name
            for name, child in self.children.items()
            if name != AZURITE
        }
        done, pending = await asyncio.wait(exits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for exited in done:
            name = exits[exited]
            logger.error("%s exited with status %s; stopping", name, self.children[name].returncode)
        return 1


async def relay_blob_events(watched: WatchedBlobs) -> None:
    async with open_relay(
        watched.connection_string, watched.container, watched.webhook_url, watched.prefix
    ) as relay:
        try:
            await relay.validate_and_run()
        except SubscriptionRefused as error:
            logger.warning("Not posting blob events: %s", error)
        except Exception:
            logger.exception("The Event Grid stand-in failed; blob events are no longer posted")


async def run_stack(arguments: argparse.Namespace) -> int:
    """Start everything and run until a stop signal (0) or until a child exits (1)."""
    # A stop signal cancels this task wherever it is, starting up included; the finally block
    # then stops whatever was started. Further signals do not interrupt that.
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def stop() -> None:
        if not main_task.cancelling():
            main_task.cancel()

    for stop_signal in STOP_SIGNALS:
        loop.add_signal_handler(stop_signal, stop)
    stack = Stack(arguments)
    tasks: list[asyncio.Task[None]] = []
    try:
        settings_file = load_local_settings(APP_ROOT)
        logger.info("App settings from %s", settings_file.name if settings_file else "nowhere")
        started = await stack.start_azurite()
        connection = azurite_connection_string(arguments.azurite_port)
        for name, value in list(os.environ.items()):
            if value.replace(" ", "").lower() == DEVELOPMENT_STORAGE:
                os.environ[name] = connection  # it means port 10000
        where = f"data in {arguments.azurite_dir}" if started else "already running"
        azurite_line = f"http://{AZURITE_HOST}:{arguments.azurite_port}/{AZURITE_ACCOUNT} ({where})"
        base_url = str(URL.build(scheme="http", host=arguments.host, port=arguments.port))
        # Imported once the settings point at this Azurite: the app declares what to watch.
        watched = watched_blobs(load_function_app(arguments.app), arguments.blob_function, base_url)
        containers = [watched.container, HOST_CONTAINER]
        storage_ready = await create_containers(watched.connection_string, containers)
        if AZURITE in stack.children:
            tasks.append(asyncio.create_task(stack.keep_azurite_running(containers)))
        host = "The local host"
        await stack.start_child(
            host,
            *(sys.executable, "-m", "local_host", "--app", arguments.app),
            *("--host", arguments.host, "--port", str(arguments.port)),
        )
        await stack.wait_until_listening(host, arguments.host, arguments.port)
        events_line = "not posted: storage is not reachable"
        if storage_ready:
            tasks.append(asyncio.create_task(relay_blob_events(watched)))
            events_line = (
                f"BlobCreated in {watched.container}/{watched.prefix} -> {watched.webhook_url}"
            )
        print(_summary(base_url, azurite_line, events_line), flush=True)
        return await stack.wait_for_an_exit()
    except asyncio.CancelledError:
        logger.info("Stopping")
        return 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await stack.stop()
        for stop_signal in STOP_SIGNALS:
            loop.remove_signal_handler(stop_signal)


def _summary(base_url: str, azurite: str, events: str) -> str:
    api = f"{base_url}/{read_route_prefix(APP_ROOT)}"
    lines = ["", "Local stack running (Ctrl-C stops it all):"]
    if DEFAULT_SITE.is_dir():
        lines.append(f"    site     {base_url}/")
    lines.append(f"    API      {api}/  (e.g. {api}/health)")
    lines.append(f"    Azurite  {azurite}")
    lines.append(f"    events   {events}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    configure_logging()
    try:
        status = asyncio.run(run_stack(arguments))
    except (StackError, ValueError) as error:
        raise SystemExit(f"local stack: {error}") from None
    raise SystemExit(status)


if __name__ == "__main__":
    main()
