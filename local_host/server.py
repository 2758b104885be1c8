"""The aiohttp application for a function app, and serving it until a stop signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import azure.functions as func
from aiohttp import web

from local_host.app_functions import app_functions
from local_host.blob_trigger import BLOB_TRIGGER, attach_blob_triggers
from local_host.guards import (
    BODY_TIMEOUT_KEY,
    BODY_TIMEOUT_SECONDS,
    CappedSite,
    ListenerLimits,
    cors,
    logged_problems,
)
from local_host.http_functions import HTTP_TRIGGER, attach_http_functions
from local_host.settings import DEFAULT_BODY_SIZE_LIMIT, DEFAULT_ROUTE_PREFIX
from local_host.static_site import StaticSite
from local_host.timer_trigger import TIMER_TRIGGER, timer_functions

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
LISTING_KEY = web.AppKey("local_host.listing", list[str])


def build_web_app(
    function_app: func.FunctionApp,
    route_prefix: str = DEFAULT_ROUTE_PREFIX,
    *,
    max_body_bytes: int = DEFAULT_BODY_SIZE_LIMIT,
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS,
    cors_origins: Sequence[str] = (),
    site: Path | None = None,
) -> web.Application:
    """An aiohttp app serving ``function_app``'s HTTP, Event Grid blob and timer triggers, and
    the Static Web Apps folder ``site`` at ``/``; ``cors_origins`` is ``Host.CORS``."""
    middlewares = [logged_problems]
    if cors_origins:  # outside the problem answers, so that errors carry CORS headers too
        middlewares.insert(0, cors(cors_origins, route_prefix))
    web_app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    web_app[BODY_TIMEOUT_KEY] = body_timeout_seconds
    functions = app_functions(function_app)

    def of_type(trigger_type: str) -> list:
        return [function for function in functions if function.trigger_type == trigger_type]

    listing = attach_http_functions(web_app, of_type(HTTP_TRIGGER), route_prefix)
    blob_listing = attach_blob_triggers(web_app, of_type(BLOB_TRIGGER))
    timers = timer_functions(of_type(TIMER_TRIGGER))
    web_app.cleanup_ctx.append(background(*(timer.run_on_schedule for timer in timers)))
    timer_listing = [timer.listing_line for timer in timers]
    web_app[LISTING_KEY] = ["Functions:"] + [
        f"    {line}" for line in listing + blob_listing + timer_listing
    ]
    served = {HTTP_TRIGGER, BLOB_TRIGGER, TIMER_TRIGGER}
    web_app[LISTING_KEY] += [
        f"not served by the local host: {f.name} ({f.trigger_type})"
        for f in functions
        if f.trigger_type not in served
    ]
    if site is not None:
        static_site = StaticSite(site, route_prefix)
        web_app[LISTING_KEY].append(f"Site: {{base}}/ (from {static_site.folder})")
        # Added last: aiohttp tries the functions' routes first.
        web_app.router.add_route("*", "/{path:.*}", static_site.handle)
    return web_app


def background(*runs: Callable[[], Coroutine[Any, Any, None]]) -> web.CleanupContext:
    """A cleanup context running each ``run()`` as a task while the web app runs."""

    async def running(_: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(run()) for run in runs]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return running


def startup_listing(web_app: web.Application, base_url: str) -> str:
    """The Core Tools-style list of functions and their URLs, printed at start-up."""
    return "\n".join(line.replace("{base}", base_url) for line in web_app[LISTING_KEY])


async def start_listening(
    web_app: web.Application, host: str, port: int, limits: ListenerLimits | None = None
) -> tuple[web.AppRunner, int]:
    """Serve ``web_app`` on ``host:port`` (0: a free one); return the runner (clean it up to
    stop) and the port."""
    limits = limits or ListenerLimits()
    runner = web.AppRunner(web_app, **limits.handler_options())
    await runner.setup()
    try:
        await CappedSite(runner, host, port, limits).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]


async def serve(
    web_app: web.Application, host: str, port: int, limits: ListenerLimits | None = None
) -> None:
    """Serve until SIGINT or SIGTERM, then let requests in flight finish and stop."""
    runner, bound_port = await start_listening(web_app, host, port, limits)
    try:
        print(startup_listing(web_app, f"http://{host}:{bound_port}"), flush=True)
        logger.info("Listening on http://%s:%d (Ctrl-C to stop)", host, bound_port)
        await wait_for_stop_signal()
        logger.info("Stopping")
    finally:
        await runner.cleanup()


async def wait_for_stop_signal() -> None:
    """Return once SIGINT or SIGTERM arrives; their handlers are restored after."""
    stop, loop = asyncio.Event(), asyncio.get_running_loop()
    for stop_signal in STOP_SIGNALS:
        loop.add_signal_handler(stop_signal, stop.set)
    try:
        await stop.wait()
    finally:
        for stop_signal in STOP_SIGNALS:
            loop.remove_signal_handler(stop_signal)
