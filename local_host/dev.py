"""The whole local stack in one command (``make run``): Azurite, the local host, Event Grid.

1. Azurite's blob service from ``node_modules`` on 127.0.0.1:10000, keeping its data in
   ``.azurite/`` (an Azurite already listening there is used as it is);
2. the models container (and the host's own ``azure-webjobs-hosts``);
3. ``python -m local_host``, which serves the site, the API, the blob webhook and the timers;
4. the Event Grid stand-in (``local_host.blob_events``), posting an event to the blob
   trigger for each file dropped under ``incoming/``.

Ctrl-C or SIGTERM stops all of them; so does the local host exiting. Azurite exiting does not:
the app keeps serving (its health says storage is unreachable) and Azurite is started again,
with a growing pause between attempts. Every app setting that says
``UseDevelopmentStorage=true`` is pointed at this Azurite, so ``--azurite-port`` works too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import MutableMapping
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob.aio import BlobServiceClient
from yarl import URL

from local_host.__main__ import DEFAULT_SITE
from local_host.blob_events import SubscriptionRefused, open_relay
from local_host.blob_trigger import webhook_url
from local_host.host_json import read_route_prefix
from local_host.logs import configure_logging
from local_host.settings import load_local_settings
from local_host.stop_signal import STOP_SIGNALS

logger = logging.getLogger("local_host.dev")

APP_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BINARY = APP_ROOT / "node_modules" / ".bin" / "azurite-blob"
AZURITE_HOST = "127.0.0.1"
# Azurite's fixed development account; the key is public and documented.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
HOST_CONTAINER = "azure-webjobs-hosts"
STARTUP_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 15
AZURITE = "Azurite"
# Pauses before starting an Azurite that exited again: doubling from the first to the last.
AZURITE_RESTART_FIRST_PAUSE_SECONDS = 1.0
AZURITE_RESTART_MAX_PAUSE_SECONDS = 60.0
# An Azurite that stays up this long is healthy again: the next restart pauses briefly.
AZURITE_STABLE_SECONDS = 60.0

Children = dict[str, asyncio.subprocess.Process]
"""The child processes by name, in the order they started."""


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
        "--no-azurite",
        action="store_true",
        help="start no Azurite; use the storage the settings name",
    )
    parser.add_argument(
        "--blob-function",
        default="promote_model",
        help="the Event Grid blob trigger to post events to",
    )
    parser.add_argument("--prefix", default="incoming/", help="blobs that get events")
    return parser.parse_args(argv)


def azurite_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{AZURITE_HOST}:{port}/{AZURITE_ACCOUNT};"
    )


def point_development_storage_at(environ: MutableMapping[str, str], connection: str) -> None:
    """Replace ``UseDevelopmentStorage=true`` (which means port 10000) with ``connection``."""
    for name, value in list(environ.items()):
        if value.replace(" ", "").lower() == DEVELOPMENT_STORAGE.lower():
            environ[name] = connection


def is_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


async def wait_until_listening(
    host: str, port: int, process: asyncio.subprocess.Process, what: str
) -> None:
    deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_SECONDS
    while not await asyncio.to_thread(is_listening, host, port):
        if process.returncode is not None:
            raise StackError(f"{what} exited with status {process.returncode} while starting")
        if asyncio.get_running_loop().time() > deadline:
            raise StackError(f"{what} did not listen on {host}:{port} in time")
        await asyncio.sleep(0.2)


async def start_azurite(port: int, data_dir: Path, children: Children) -> bool:
    """Start Azurite's blob service; False when one already listens on ``port``."""
    if is_listening(AZURITE_HOST, port):
        logger.info("Using the Azurite already listening on %s:%d", AZURITE_HOST, port)
        return False
    if not AZURITE_BINARY.exists():
        raise StackError(f"{AZURITE_BINARY} is missing: run `npm ci` (make setup installs it)")
    data_dir.mkdir(parents=True, exist_ok=True)
    process = await start_child(
        children,
        AZURITE,
        str(AZURITE_BINARY),
        *("--blobHost", AZURITE_HOST, "--blobPort", str(port), "--location", str(data_dir)),
        *("--disableTelemetry", "--skipApiVersionCheck", "--silent"),
    )
    await wait_until_listening(AZURITE_HOST, port, process, AZURITE)
    logger.info("Azurite started (pid %d) on %s:%d", process.pid, AZURITE_HOST, port)
    return True


async def keep_azurite_running(
    port: int, data_dir: Path, children: Children, containers: list[str]
) -> None:
    """Start Azurite again each time it exits, pausing longer after each quick failure.

    Runs until cancelled; the app keeps serving meanwhile, without storage.
    """
    pause = AZURITE_RESTART_FIRST_PAUSE_SECONDS
    loop = asyncio.get_running_loop()
    while True:
        started_at = loop.time()
        status = await children[AZURITE].wait()
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
            if not await start_azurite(port, data_dir, children):
                # Someone else's Azurite took the port: use it, and there is nothing to watch.
                return
        except StackError as error:
            logger.error("Azurite did not start again: %s", error)
            continue
        except Exception:
            # Keep trying: storage coming back is worth more than this one attempt.
            logger.exception("Starting Azurite again failed")
            continue
        # A killed Azurite may lose what it had not saved yet, containers included.
        if await create_containers(azurite_connection_string(port), containers):
            logger.info("Azurite is back, with the app's containers")


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


async def relay_blob_events(connection_string: str, container: str, url: str, prefix: str) -> None:
    async with open_relay(connection_string, container, url, prefix) as relay:
        try:
            await relay.validate_and_run()
        except SubscriptionRefused as error:
            logger.warning("Not posting blob events: %s", error)
        except Exception:
            logger.exception("The Event Grid stand-in failed; blob events are no longer posted")


async def start_child(children: Children, name: str, *command: str) -> asyncio.subprocess.Process:
    """Start a child and register it at once, so that a stop during startup stops it too."""
    # A session of its own, so that Ctrl-C reaches this supervisor only and it stops the
    # children in order.
    children[name] = await asyncio.create_subprocess_exec(
        *command, cwd=APP_ROOT, start_new_session=True
    )
    return children[name]


async def stop_children(children: Children) -> None:
    """SIGTERM each child, the last started first; kill what does not stop in time."""
    for child in reversed(children.values()):
        if child.returncode is not None:
            continue
        child.terminate()
        try:
            await asyncio.wait_for(child.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            child.kill()
            await child.wait()


async def run_stack(arguments: argparse.Namespace) -> int:
    """Start everything and run until a stop signal (0) or until a child exits (1)."""
    # A stop signal cancels this task wherever it is, starting up included; the finally
    # block then stops whatever was started. Further signals do not interrupt that.
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def stop() -> None:
        if not main_task.cancelling():
            main_task.cancel()

    for stop_signal in STOP_SIGNALS:
        loop.add_signal_handler(stop_signal, stop)
    children: Children = {}
    relay: asyncio.Task[None] | None = None
    azurite_keeper: asyncio.Task[None] | None = None
    try:
        settings_file = load_local_settings(APP_ROOT)
        logger.info("App settings from %s", settings_file.name if settings_file else "nowhere")
        azurite_line = await _start_storage(arguments, children)
        storage = os.environ.get("MODELS_STORAGE", "")
        container = os.environ.get("MODELS_CONTAINER") or "models"
        storage_ready = await create_containers(storage, [container, HOST_CONTAINER])
        if AZURITE in children:
            azurite_keeper = asyncio.create_task(
                keep_azurite_running(
                    arguments.azurite_port,
                    arguments.azurite_dir,
                    children,
                    [container, HOST_CONTAINER],
                )
            )

        host = await start_child(
            children,
            "The local host",
            *(sys.executable, "-m", "local_host", "--app", arguments.app),
            *("--host", arguments.host, "--port", str(arguments.port)),
        )
        await wait_until_listening(arguments.host, arguments.port, host, "The local host")

        base_url = str(URL.build(scheme="http", host=arguments.host, port=arguments.port))
        events_url = webhook_url(base_url, arguments.blob_function)
        if storage_ready:
            relay = asyncio.create_task(
                relay_blob_events(storage, container, events_url, arguments.prefix)
            )
        events_line = (
            f"BlobCreated in {container}/{arguments.prefix} -> {events_url}"
            if storage_ready
            else "not posted: storage is not reachable"
        )
        print(_summary(base_url, azurite_line, events_line), flush=True)
        return await _wait_for_a_child_to_exit(children)
    except asyncio.CancelledError:
        logger.info("Stopping")
        return 0
    finally:
        for task in (azurite_keeper, relay):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await stop_children(children)
        for stop_signal in STOP_SIGNALS:
            loop.remove_signal_handler(stop_signal)


async def _start_storage(arguments: argparse.Namespace, children: Children) -> str:
    """Start or reuse Azurite unless told not to; how the summary describes it."""
    if arguments.no_azurite:
        return "not started (--no-azurite)"
    started = await start_azurite(arguments.azurite_port, arguments.azurite_dir, children)
    point_development_storage_at(os.environ, azurite_connection_string(arguments.azurite_port))
    url = f"http://{AZURITE_HOST}:{arguments.azurite_port}/{AZURITE_ACCOUNT}"
    return f"{url} (data in {arguments.azurite_dir})" if started else f"{url} (already running)"


async def _wait_for_a_child_to_exit(children: Children) -> int:
    """Wait for a child other than Azurite (which is started again instead) to exit."""
    exits = {
        asyncio.create_task(child.wait()): name
        for name, child in children.items()
        if name != AZURITE
    }
    done, pending = await asyncio.wait(exits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for exited in done:
        name = exits[exited]
        logger.error("%s exited with status %s; stopping", name, children[name].returncode)
    return 1


def _summary(base_url: str, azurite: str, events: str) -> str:
    api_prefix = read_route_prefix(APP_ROOT)
    lines = ["", "Local stack running (Ctrl-C stops it all):"]
    if DEFAULT_SITE.is_dir():
        lines.append(f"    site     {base_url}/")
    lines.append(f"    API      {base_url}/{api_prefix}/  (e.g. {base_url}/{api_prefix}/health)")
    lines.append(f"    Azurite  {azurite}")
    lines.append(f"    events   {events}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    configure_logging()
    try:
        status = asyncio.run(run_stack(arguments))
    except StackError as error:
        raise SystemExit(f"local stack: {error}") from None
    raise SystemExit(status)


if __name__ == "__main__":
    main()
