"""Build the aiohttp application for a function app, and run it until a stop signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

import azure.functions as func
from aiohttp import web
from yarl import URL

from local_host.app_functions import app_functions
from local_host.blob_trigger import BLOB_TRIGGER, attach_blob_triggers
from local_host.http_functions import HTTP_TRIGGER, attach_http_functions
from local_host.http_guards import (
    BODY_TIMEOUT_KEY,
    BODY_TIMEOUT_SECONDS,
    cors_middleware,
    problem_details_middleware,
    request_logging_middleware,
)
from local_host.listener import ListenerLimits, start_listening
from local_host.settings import DEFAULT_BODY_SIZE_LIMIT, DEFAULT_ROUTE_PREFIX
from local_host.static_site import StaticSite
from local_host.timer_trigger import TIMER_TRIGGER, attach_timers

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
LISTING_KEY = web.AppKey("local_host.listing", list[str])
SITE_KEY = web.AppKey("local_host.site", StaticSite)


def build_web_app(
    function_app: func.FunctionApp,
    route_prefix: str = DEFAULT_ROUTE_PREFIX,
    *,
    max_body_bytes: int = DEFAULT_BODY_SIZE_LIMIT,
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS,
    cors_origins: Sequence[str] = (),
    site: Path | None = None,
) -> web.Application:
    """An aiohttp app serving ``function_app``'s HTTP, Event Grid blob and timer triggers.

    ``site`` is a Static Web Apps folder served at ``/`` around the functions. Request bodies
    over ``max_body_bytes`` or slower than ``body_timeout_seconds`` are refused;
    ``cors_origins`` (``Host.CORS``) may call the functions from other origins.
    """
    middlewares = [request_logging_middleware, problem_details_middleware]
    if cors_origins:
        # Inside the log, around the problem answers, so that errors carry CORS headers too.
        middlewares.insert(1, cors_middleware(cors_origins, route_prefix))
    web_app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    web_app[BODY_TIMEOUT_KEY] = body_timeout_seconds
    functions = app_functions(function_app)

    def of_type(trigger_type: str) -> list:
        return [function for function in functions if function.trigger_type == trigger_type]

    listing = attach_http_functions(web_app, of_type(HTTP_TRIGGER), route_prefix)
    listing += attach_blob_triggers(web_app, of_type(BLOB_TRIGGER))
    listing += attach_timers(web_app, of_type(TIMER_TRIGGER))
    served_types = {HTTP_TRIGGER, BLOB_TRIGGER, TIMER_TRIGGER}
    web_app[LISTING_KEY] = ["Functions:"] + [f"    {line}" for line in listing]
    web_app[LISTING_KEY] += [
        f"not served by the local host: {function.name} ({function.trigger_type})"
        for function in functions
        if function.trigger_type not in served_types
    ]
    if site is not None:
        web_app[SITE_KEY] = StaticSite(site, route_prefix)
        # After the functions' routes: aiohttp tries those first, so they stay untouched.
        web_app.router.add_route("*", "/{path:.*}", web_app[SITE_KEY].handle)
    return web_app


def startup_listing(web_app: web.Application, base_url: str) -> str:
    """The Core Tools-style list of functions and their URLs, printed at startup."""
    listing = "\n".join(line.replace("{base}", base_url) for line in web_app[LISTING_KEY])
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


async def wait_for_stop_signal() -> None:
    """Return once SIGINT or SIGTERM arrives; the signals' handlers are restored after."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in STOP_SIGNALS:
        loop.add_signal_handler(stop_signal, stop.set)
    try:
        await stop.wait()
    finally:
        for stop_signal in STOP_SIGNALS:
            loop.remove_signal_handler(stop_signal)
