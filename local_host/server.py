"""The aiohttp application for a function app, and serving it until a stop signal."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure.functions as func
from aiohttp import web

try:
    import uvloop
except ImportError:  # not built for Windows
    uvloop = None

from local_host.app_functions import app_functions
from local_host.balance import ConnectionShare
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
from local_host.settings import (
    APP_ROOT,
    DEFAULT_BODY_SIZE_LIMIT,
    DEFAULT_ROUTE_PREFIX,
    host_cors_origins,
    load_function_app,
    load_local_settings,
    read_route_prefix,
    request_body_limit,
)
from local_host.static_site import StaticSite
from local_host.timer_trigger import TIMER_TRIGGER, timer_functions

if TYPE_CHECKING:
    from local_host.processes import ExtraProcesses

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
LISTING_KEY = web.AppKey("local_host.listing", list[str])


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run the host's main coroutine on uvloop's event loop: at 8 and 32 clients it served a
    tenth to a fifth more requests/s than asyncio's own (docs/benchmarks.md). asyncio's where
    uvloop is missing (Windows)."""
    if uvloop is None:
        asyncio.run(main)
    else:
        uvloop.run(main)


def build_web_app(
    function_app: func.FunctionApp,
    route_prefix: str = DEFAULT_ROUTE_PREFIX,
    *,
    max_body_bytes: int = DEFAULT_BODY_SIZE_LIMIT,
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS,
    cors_origins: Sequence[str] = (),
    site: Path | None = None,
    run_timers: bool = True,
) -> web.Application:
    """An aiohttp app serving ``function_app``'s HTTP, Event Grid blob and timer triggers, and
    the Static Web Apps folder ``site`` at ``/``; ``cors_origins`` is ``Host.CORS``. Timers run
    only where ``run_timers`` (one process of several: a timer fires once per host)."""
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
    if run_timers:
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


def web_app_from_settings(
    app_module: str, site: Path | None, *, run_timers: bool = True
) -> web.Application:
    """The app as its settings say: local.settings.json's values in the environment first (the
    app reads them when imported), then host.json's prefix, the body limit and Host.CORS."""
    settings_file = load_local_settings(APP_ROOT)
    logger.info("App settings from %s", settings_file.name if settings_file else "nowhere")
    return build_web_app(
        load_function_app(app_module),
        route_prefix=read_route_prefix(APP_ROOT),
        max_body_bytes=request_body_limit(),
        cors_origins=host_cors_origins(settings_file),
        site=site,
        run_timers=run_timers,
    )


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
    web_app: web.Application,
    host: str,
    port: int,
    limits: ListenerLimits | None = None,
    *,
    sockets: Sequence[socket.socket] = (),
    share: ConnectionShare | None = None,
) -> tuple[web.AppRunner, CappedSite]:
    """Serve ``web_app`` on ``host:port`` (0: a free one), or on ``sockets`` another process
    listens on, taking its ``share`` of the connections when several processes serve them;
    return the runner (clean it up to stop) and the site."""
    limits = limits or ListenerLimits()
    runner = web.AppRunner(web_app, **limits.handler_options())
    await runner.setup()
    site = CappedSite(runner, host, port, limits, sockets=sockets, share=share)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site


async def serve(
    web_app: web.Application,
    host: str,
    port: int,
    limits: ListenerLimits | None = None,
    *,
    extra_processes: ExtraProcesses | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then let requests in flight finish and stop; with
    ``extra_processes``, they accept on the same sockets beside this one and stop with it."""
    share = extra_processes.share(0) if extra_processes is not None else None
    runner, site = await start_listening(web_app, host, port, limits, share=share)
    bound_port = runner.addresses[0][1]
    try:
        if extra_processes is not None:
            await extra_processes.start(site.listening_sockets())
        print(startup_listing(web_app, f"http://{host}:{bound_port}"), flush=True)
        logger.info("Listening on http://%s:%d (Ctrl-C to stop)", host, bound_port)
        await wait_for_stop_signal()
        logger.info("Stopping")
    finally:
        if extra_processes is not None:
            await extra_processes.stop()
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
