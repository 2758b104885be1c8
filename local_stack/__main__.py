"""``make run``: the whole local stack in one command, ``python -m local_stack``.

It starts Azurite's blob service (data in ``.azurite/``), points every
``UseDevelopmentStorage=true`` setting at it, creates the models container, then serves the app on
the local host with the Event Grid stand-in posting the drop zone's BlobCreated events to
``promote_model``, as the event subscription in infra/modules/event-subscription.bicep does in
Azure. Ctrl-C or SIGTERM stops it all; on Linux, Azurite also dies with the stack when the stack
is killed outright (kill -9). If Azurite exits, the app keeps serving without storage while
Azurite is started again. Something already listening on Azurite's port is used as it is,
unsupervised (neither restarted nor stopped), and the log and the banner say so.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import socket
from pathlib import Path

from functions.settings import CONTAINER_SETTING, STORAGE_SETTING, models_container
from functions.storage.registry import INCOMING
from local_host.__main__ import argument_parser, folder
from local_host.event_grid import webhook_url
from local_host.server import (
    STOP_SIGNALS,
    background,
    configure_logging,
    host_app_from_settings,
    serve,
)
from local_host.settings import APP_ROOT, load_local_settings, read_route_prefix
from local_host.worker import WorkerFailed
from local_stack.azurite import Azurite, azurite_connection_string, create_containers
from local_stack.event_grid import Subscription, relay_blob_events
from local_stack.static_site import attach_site

logger = logging.getLogger("local_stack")

DEFAULT_SITE = APP_ROOT / "static-web"
HOST_CONTAINER = "azure-webjobs-hosts"  # the Functions host's own
# The subscription infra/modules/event-subscription.bicep makes: the drop zone -> the promoter.
PROMOTION_FUNCTION = "promote_model"


def port_to_serve(host: str, port: int) -> int:
    """``port``, or for 0 one that is free on ``host`` now: the stand-in is told where the webhook
    is before the host listens, so the host cannot pick its port as it binds."""
    if port:
        return port
    family, *_ = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


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
        web_app = await host_app_from_settings(arguments.app_dir)
        if arguments.site is not None:
            attach_site(web_app, arguments.site, read_route_prefix(arguments.app_dir))
        runs = [functools.partial(azurite.keep_running, containers)] if started else []
        runs += [functools.partial(relay_blob_events, subscription)] if storage_ready else []
        web_app.cleanup_ctx.append(background(*runs))
        where = (
            f"data in {arguments.azurite_dir}"
            if started
            else "found running: NOT supervised, neither restarted nor stopped by this stack"
        )
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


def stack_argument_parser() -> argparse.ArgumentParser:
    parser = argument_parser("python -m local_stack")
    parser.description = "Azurite, the local Functions host, the site and the Event Grid stand-in."
    parser.add_argument("--azurite-port", type=int, default=10000, help="Azurite's blob port")
    parser.add_argument("--azurite-dir", type=Path, default=APP_ROOT / ".azurite", help="its data")
    parser.add_argument(
        "--site",
        type=folder,
        default=DEFAULT_SITE,
        help="the Static Web Apps folder served at /",
    )
    parser.add_argument("--no-site", dest="site", action="store_const", const=None, help="no site")
    return parser


def main(argv: list[str] | None = None) -> None:
    arguments = stack_argument_parser().parse_args(argv)
    configure_logging()
    try:
        asyncio.run(run_stack(arguments))
    except (asyncio.CancelledError, KeyboardInterrupt):
        logger.info("Stopped")
    except (ValueError, WorkerFailed) as error:
        raise SystemExit(f"local stack: {error}") from None


if __name__ == "__main__":
    main()
