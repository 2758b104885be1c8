"""Build the aiohttp application for a function app, and run it until a stop signal."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import azure.functions as func
from aiohttp import web
from yarl import URL

from local_host.adapters import TriggerAdapter
from local_host.blob_trigger import BlobTriggerAdapter
from local_host.cors import cors_middleware
from local_host.discovery import DiscoveredFunction, discover
from local_host.http_routes import DEFAULT_ROUTE_PREFIX
from local_host.http_trigger import HttpTriggerAdapter
from local_host.listener import ListenerLimits, start_listening
from local_host.problems import problem_details_middleware
from local_host.request_body import BODY_TIMEOUT_KEY, BODY_TIMEOUT_SECONDS
from local_host.request_log import request_logging_middleware
from local_host.settings import DEFAULT_BODY_SIZE_LIMIT
from local_host.static_site import StaticSite
from local_host.stop_signal import wait_for_stop_signal
from local_host.timer_trigger import TimerTriggerAdapter

logger = logging.getLogger(__name__)

# The Functions host's own limit on request bodies, unless an app setting lowers it.
MAX_REQUEST_BODY_BYTES = DEFAULT_BODY_SIZE_LIMIT


@dataclass(frozen=True)
class FunctionCatalog:
    """Which adapter serves each function, and which functions nothing serves yet."""

    served: list[tuple[DiscoveredFunction, TriggerAdapter]]
    unserved: list[DiscoveredFunction]

    def listing(self, base_url: str) -> str:
        lines = ["Functions:"]
        lines += [
            f"    {adapter.describe(function, base_url)}" for function, adapter in self.served
        ]
        lines += [
            f"not served by the local host: {function.name} ({function.trigger_type})"
            for function in self.unserved
        ]
        return "\n".join(lines)


CATALOG_KEY = web.AppKey("local_host.catalog", FunctionCatalog)
SITE_KEY = web.AppKey("local_host.site", StaticSite)


def build_web_app(
    function_app: func.FunctionApp,
    route_prefix: str = DEFAULT_ROUTE_PREFIX,
    *,
    max_body_bytes: int = MAX_REQUEST_BODY_BYTES,
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS,
    cors_origins: Sequence[str] = (),
    extra_adapters: Sequence[TriggerAdapter] = (),
    site: Path | None = None,
) -> web.Application:
    """An aiohttp app serving ``function_app``'s functions through the trigger adapters.

    HTTP, blob (Event Grid) and timer triggers are served by default; ``extra_adapters``
    adds or replaces trigger kinds. Each adapter gets the functions whose trigger type it
    names, and the rest are listed as not served. ``site`` is a Static Web
    Apps folder to serve at ``/`` around the functions, as the Static Web Apps CLI does.
    Request bodies over ``max_body_bytes`` or slower than ``body_timeout_seconds`` are
    refused; ``cors_origins`` (``Host.CORS``) may call the functions from other origins.
    """
    adapters = {
        adapter.trigger_type: adapter
        for adapter in (
            HttpTriggerAdapter(route_prefix),
            BlobTriggerAdapter(),
            TimerTriggerAdapter(),
            *extra_adapters,
        )
    }
    middlewares = [request_logging_middleware, problem_details_middleware]
    if cors_origins:
        # Inside the log, around the problem answers, so that errors carry CORS headers too.
        middlewares.insert(1, cors_middleware(cors_origins, route_prefix))
    web_app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    web_app[BODY_TIMEOUT_KEY] = body_timeout_seconds
    functions = discover(function_app)
    for trigger_type, adapter in adapters.items():
        adapter.attach(web_app, [f for f in functions if f.trigger_type == trigger_type])
    web_app[CATALOG_KEY] = FunctionCatalog(
        served=[(f, adapters[f.trigger_type]) for f in functions if f.trigger_type in adapters],
        unserved=[f for f in functions if f.trigger_type not in adapters],
    )
    if site is not None:
        web_app[SITE_KEY] = StaticSite(site, route_prefix)
        web_app[SITE_KEY].attach(web_app)
    return web_app


def startup_listing(web_app: web.Application, base_url: str) -> str:
    """The Core Tools-style list of functions and their URLs, printed at startup."""
    listing = web_app[CATALOG_KEY].listing(base_url)
    if SITE_KEY in web_app:
        listing += f"\nSite: {base_url}/ (from {web_app[SITE_KEY].folder})"
    return listing


async def serve(
    web_app: web.Application, host: str, port: int, limits: ListenerLimits | None = None
) -> None:
    """Serve until SIGINT or SIGTERM, then let in-flight requests finish and stop."""
    runner = await start_listening(web_app, host, port, limits)
    try:
        bound_port = runner.addresses[0][1]  # differs from ``port`` when port is 0
        base_url = str(URL.build(scheme="http", host=host, port=bound_port))
        print(startup_listing(web_app, base_url), flush=True)
        logger.info("Listening on %s (Ctrl-C to stop)", base_url)
        await wait_for_stop_signal()
        logger.info("Stopping")
    finally:
        await runner.cleanup()
