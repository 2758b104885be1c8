"""Command line: ``python -m local_host [--app function_app] [--host localhost] [--port 7071]
[--site static-web | --no-site]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from local_host.server import build_web_app, serve
from local_host.settings import (
    APP_ROOT,
    configure_logging,
    host_cors_origins,
    load_function_app,
    load_local_settings,
    read_route_prefix,
    request_body_limit,
)

DEFAULT_SITE = APP_ROOT / "static-web"

logger = logging.getLogger("local_host")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_host",
        description="Serve the function app's functions (HTTP, Event Grid blob and timer "
        "triggers), and the site beside them, without Azure Functions Core Tools.",
    )
    parser.add_argument(
        "--app", default="function_app", help="module that defines `app` (default: function_app)"
    )
    parser.add_argument("--host", default="localhost", help="interface to listen on")
    parser.add_argument("--port", type=int, default=7071, help="0 picks a free port")
    site = parser.add_mutually_exclusive_group()
    site.add_argument(
        "--site",
        type=Path,
        default=DEFAULT_SITE if DEFAULT_SITE.is_dir() else None,
        help="Static Web Apps folder to serve at / beside the API (default: static-web)",
    )
    site.add_argument(
        "--no-site", dest="site", action="store_const", const=None, help="serve the API only"
    )
    arguments = parser.parse_args(argv)
    if arguments.site is not None and not arguments.site.is_dir():
        parser.error(f"--site {arguments.site}: no such folder")
    return arguments


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    configure_logging()
    # Settings go into the environment before the app is imported, since modules read them
    # at import time.
    settings_file = load_local_settings(APP_ROOT)
    logger.info("App settings from %s", settings_file.name if settings_file else "nowhere")
    web_app = build_web_app(
        load_function_app(arguments.app),
        route_prefix=read_route_prefix(APP_ROOT),
        max_body_bytes=request_body_limit(),
        cors_origins=host_cors_origins(settings_file),
        site=arguments.site,
    )
    asyncio.run(serve(web_app, arguments.host, arguments.port))


if __name__ == "__main__":
    main()
