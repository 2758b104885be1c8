"""The host: the app's functions, as the runtime indexed them, served with aiohttp until a stop
signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from local_host.event_grid import EVENT_GRID_TRIGGER, attach_event_grid_webhook
from local_host.guards import (
    BODY_TIMEOUT_KEY,
    BODY_TIMEOUT_SECONDS,
    CappedSite,
    ListenerLimits,
    cors,
    logged_problems,
)
from local_host.http_trigger import HTTP_TRIGGER, attach_http_functions
from local_host.settings import (
    DEFAULT_BODY_SIZE_LIMIT,
    DEFAULT_ROUTE_PREFIX,
    host_cors_origins,
    load_local_settings,
    read_route_prefix,
    request_body_limit,
)
from local_host.timer_trigger import TIMER_TRIGGER, timers
from local_host.worker import Worker

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
LISTING_KEY = web.AppKey("local_host.listing", list[str])
WORKER_KEY = web.AppKey("local_host.worker", Worker)


def configure_logging() -> None:
    """INFO to stderr, without the Azure SDK's dump of every storage request or the runtime's
    line per invocation (the host logs each one)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)
    logging.getLogger("azure.functions").setLevel(logging.WARNING)


async def host_app(
    app_directory: Path,
    route_prefix: str = DEFAULT_ROUTE_PREFIX,
    *,
    max_body_bytes: int = DEFAULT_BODY_SIZE_LIMIT,
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS,
    cors_origins: Sequence[str] = (),
) -> web.Application:
    """An aiohttp app serving the HTTP, Event Grid and timer triggers of the function app in
    ``app_directory``; ``cors_origins`` is ``Host.CORS``."""
    worker = await Worker.start(app_directory)
    middlewares = [logged_problems]
    if cors_origins:  # outside the problem answers, so that errors carry CORS headers too
        middlewares.insert(0, cors(cors_origins, route_prefix))
    web_app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    web_app[BODY_TIMEOUT_KEY], web_app[WORKER_KEY] = body_timeout_seconds, worker
    listing = attach_http_functions(web_app, worker, route_prefix)
    listing += attach_event_grid_webhook(web_app, worker)
    scheduled = timers(worker)
    listing += [timer.listing_line for timer in scheduled]
    web_app.cleanup_ctx.append(background(*(timer.run_on_schedule for timer in scheduled)))
    served = {HTTP_TRIGGER, EVENT_GRID_TRIGGER, TIMER_TRIGGER}
    kinds = {f.name: f.trigger["type"] for f in worker.functions}
    listing += [
        f"{name}: {kind}, not served locally" for name, kind in kinds.items() if kind not in served
    ]
    web_app[LISTING_KEY] = ["Functions:", *(f"    {line}" for line in listing)]
    return web_app


async def host_app_from_settings(app_directory: Path) -> web.Application:
    """The app as its settings say: local.settings.json's values in the environment first (the
    app reads them when imported), then host.json's prefix, the body limit and Host.CORS."""
    settings_file = load_local_settings(app_directory)
    logger.info("App settings from %s", settings_file.name if settings_file else "nowhere")
    return await host_app(
        app_directory,
        route_prefix=read_route_prefix(app_directory),
        max_body_bytes=request_body_limit(),
        cors_origins=host_cors_origins(settings_file),
    )


def background(*runs: Callable[[], Coroutine[Any, Any, None]]) -> Any:
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


async def serve(web_app: web.Application, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then let requests in flight finish and stop."""
    limits = ListenerLimits()
    runner = web.AppRunner(web_app, **limits.handler_options())
    await runner.setup()
    try:
        await CappedSite(runner, host, port, limits).start()
        base_url = f"http://{host}:{runner.addresses[0][1]}"
        print(startup_listing(web_app, base_url), flush=True)
        logger.info("Listening on %s (Ctrl-C to stop)", base_url)
        await wait_for_stop_signal()
        logger.info("Stopping")
    finally:
        await runner.cleanup()
        web_app[WORKER_KEY].stop()


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
