"""The whole local stack in one command (``make run``): Azurite, the host and Event Grid.

It starts Azurite's blob service from ``node_modules`` (data in ``.azurite/``; one already
listening on the port is used as it is), points every ``UseDevelopmentStorage=true`` setting
at it, creates the models container, then serves the app with the Event Grid stand-in posting
the drop zone's BlobCreated events to ``promote_model``, as the event subscription in
infra/modules/event-subscription.bicep does in Azure. Ctrl-C or SIGTERM stops it all. If Azurite
exits, the app keeps serving without storage while Azurite is started again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import socket
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob.aio import BlobServiceClient

from functions.settings import CONTAINER_SETTING, STORAGE_SETTING, models_container
from functions.storage.registry import INCOMING
from local_host.__main__ import argument_parser, checked_arguments
from local_host.event_grid import Subscription, relay_blob_events, webhook_url
from local_host.server import (
    STOP_SIGNALS,
    background,
    configure_logging,
    host_app_from_settings,
    serve,
)
from local_host.settings import APP_ROOT, load_local_settings
from local_host.worker import WorkerFailed

logger = logging.getLogger("local_host.dev")

AZURITE_BINARY = APP_ROOT / "node_modules" / ".bin" / "azurite-blob"
AZURITE_HOST = "127.0.0.1"
# Azurite's fixed development account; the key is public and documented.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
HOST_CONTAINER = "azure-webjobs-hosts"  # the Functions host's own
# The subscription infra/modules/event-subscription.bicep makes: the drop zone -> the promoter.
PROMOTION_FUNCTION = "promote_model"
# Pauses before starting an exited Azurite again double up to the last, and start short again
# after an Azurite that stayed up a minute.
RESTART_PAUSES = (1.0, 60.0)


def azurite_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{AZURITE_HOST}:{port}/{AZURITE_ACCOUNT};"
    )


def is_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def port_to_serve(host: str, port: int) -> int:
    """``port``, or for 0 one that is free on ``host`` now: the stand-in is told where the webhook
    is before the host listens, so the host cannot pick its port as it binds."""
    if port:
        return port
    family, *_ = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


async def create_containers(connection_string: str, containers: list[str]) -> bool:
    """Create the containers the app expects; False (with a warning) if storage is not there."""
    try:  # storage that is not there should not hold anything up for the SDK's 15 s retries
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


class Azurite:
    """Azurite's blob service as a child process, started again whenever it exits."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port, self.data_dir = port, data_dir
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> bool:
        """Start it and wait until it listens; False when another already listens there."""
        if is_listening(AZURITE_HOST, self.port):
            logger.info("Using the Azurite already listening on %s:%d", AZURITE_HOST, self.port)
            return False
        if not AZURITE_BINARY.exists():
            raise SystemExit(f"{AZURITE_BINARY} is missing: run `npm ci` (make setup installs it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            str(AZURITE_BINARY),
            *(
                "--blobHost",
                AZURITE_HOST,
                "--blobPort",
                str(self.port),
                "--location",
                str(self.data_dir),
            ),
            *("--disableTelemetry", "--skipApiVersionCheck", "--silent"),
            start_new_session=True,  # Ctrl-C reaches this process only, which stops it in order
        )
        for _ in range(600):
            if await asyncio.to_thread(is_listening, AZURITE_HOST, self.port):
                logger.info("Azurite started (pid %d) on port %d", self.process.pid, self.port)
                return True
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.2)
        raise SystemExit(f"Azurite did not listen on {AZURITE_HOST}:{self.port}")

    async def keep_running(self, containers: list[str]) -> None:
        """Start it again each time it exits, with a growing pause, until cancelled."""
        pause, loop = RESTART_PAUSES[0], asyncio.get_running_loop()
        while self.process is not None:
            started_at = loop.time()
            status = await self.process.wait()
            pause = RESTART_PAUSES[0] if loop.time() - started_at > 60 else pause
            logger.warning(
                "Azurite exited with status %s; the app keeps serving without storage. "
                "Starting Azurite again in %.0f s",
                status,
                pause,
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_PAUSES[1])
            try:
                if not await self.start():
                    return  # another Azurite took the port: use it
            except (
                Exception,
                SystemExit,
            ):  # keep trying: storage coming back is worth it
                logger.exception("Azurite did not start again")
                continue
            # A killed Azurite may lose what it had not saved, containers included.
            if await create_containers(azurite_connection_string(self.port), containers):
                logger.info("Azurite is back, with the app's containers")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def run_stack(arguments: argparse.Namespace) -> None:
    """Start Azurite, then serve the app with the stand-in until a stop signal."""
    loop, main_task = asyncio.get_running_loop(), asyncio.current_task()
    for stop_signal in STOP_SIGNALS:  # until serve() takes the signals over
        loop.add_signal_handler(stop_signal, main_task.cancel)
    azurite = Azurite(arguments.azurite_port, arguments.azurite_dir)
    arguments.port = port_to_serve(arguments.host, arguments.port)
    try:
        load_local_settings(arguments.app_dir)
        started = await azurite.start()
        connection = azurite_connection_string(arguments.azurite_port)
        for name, value in list(os.environ.items()):
            if value.replace(" ", "").lower() == "usedevelopmentstorage=true":
                os.environ[name] = connection  # it means port 10000
        subscription = Subscription(
            os.environ.get(STORAGE_SETTING, connection),
            models_container(),
            INCOMING,
            webhook_url(f"http://{arguments.host}:{arguments.port}", PROMOTION_FUNCTION),
        )
        containers = [subscription.container, HOST_CONTAINER]
        storage_ready = await create_containers(subscription.connection_string, containers)
        web_app = await host_app_from_settings(arguments.app_dir, arguments.site)
        runs = [functools.partial(azurite.keep_running, containers)] if started else []
        runs += [functools.partial(relay_blob_events, subscription)] if storage_ready else []
        web_app.cleanup_ctx.append(background(*runs))
        where = f"data in {arguments.azurite_dir}" if started else "already running"
        events = (
            f"BlobCreated in {subscription.container}/{subscription.prefix} -> "
            f"{subscription.webhook_url}"
            if storage_ready
            else "not posted: storage is not reachable"
        )
        endpoint = connection.split("BlobEndpoint=")[1]
        print(f"\nLocal stack (Ctrl-C stops it all):\n    Azurite  {endpoint} ({where})")
        print(f"    events   {events} ({STORAGE_SETTING}, {CONTAINER_SETTING})\n", flush=True)
        await serve(web_app, arguments.host, arguments.port)
    finally:
        await azurite.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argument_parser("python -m local_host.dev")
    parser.description = (
        "Run Azurite, the local Functions host and the Event Grid stand-in together."
    )
    parser.add_argument("--azurite-port", type=int, default=10000, help="Azurite's blob port")
    parser.add_argument("--azurite-dir", type=Path, default=APP_ROOT / ".azurite", help="its data")
    arguments = checked_arguments(parser, argv)
    configure_logging()
    try:
        asyncio.run(run_stack(arguments))
    except (asyncio.CancelledError, KeyboardInterrupt):
        logger.info("Stopped")
    except (ValueError, WorkerFailed) as error:
        raise SystemExit(f"local stack: {error}") from None


if __name__ == "__main__":
    main()
