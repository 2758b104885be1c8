"""``python -m local_host [--app function_app] [--host localhost] [--port 7071] [--no-site]``:
serve the function app, and the site beside it, without Core Tools."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from aiohttp import web

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


def argument_parser(prog: str = "python -m local_host") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--app", default="function_app", help="module that defines `app`")
    parser.add_argument("--host", default="localhost", help="interface to listen on")
    parser.add_argument("--port", type=int, default=7071, help="0 picks a free port")
    parser.add_argument(
        "--site",
        type=Path,
        default=DEFAULT_SITE if DEFAULT_SITE.is_dir() else None,
        help="Static Web Apps folder served at /",
    )
    parser.add_argument(
        "--no-site",
        dest="site",
        action="store_const",
        const=None,
        help="serve the API only",
    )
    return parser


def checked_arguments(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.Namespace:
    arguments = parser.parse_args(argv)
    if arguments.site is not None and not arguments.site.is_dir():
        parser.error(f"--site {arguments.site}: no such folder")
    return arguments


def web_app_from_settings(arguments: argparse.Namespace) -> web.Application:
    """The app as its settings say: local.settings.json's values in the environment first (the
    app reads them when imported), then host.json's prefix, the body limit and Host.CORS."""
    settings_file = load_local_settings(APP_ROOT)
    logger.info("App settings from %s", settings_file.name if settings_file else "nowhere")
    return build_web_app(
        load_function_app(arguments.app),
        route_prefix=read_route_prefix(APP_ROOT),
        max_body_bytes=request_body_limit(),
        cors_origins=host_cors_origins(settings_file),
        site=arguments.site,
    )


def main(argv: list[str] | None = None) -> None:
    arguments = checked_arguments(argument_parser(), argv)
    configure_logging()
    asyncio.run(serve(web_app_from_settings(arguments), arguments.host, arguments.port))


if __name__ == "__main__":
    main()
