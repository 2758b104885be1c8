"""``python -m local_host [--app-dir .] [--host localhost] [--port 7071] [--no-site]``: serve the
function app in a folder (its ``function_app.py``) through azure-functions-runtime, and the site
beside it, without Core Tools."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from local_host.server import configure_logging, host_app_from_settings, serve
from local_host.settings import APP_ROOT
from local_host.worker import WorkerFailed

DEFAULT_SITE = APP_ROOT / "static-web"


def argument_parser(prog: str = "python -m local_host") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--app-dir", type=Path, default=APP_ROOT, help="the function app's folder")
    parser.add_argument("--host", default="localhost", help="interface to listen on")
    parser.add_argument("--port", type=int, default=7071, help="0 picks a free port")
    parser.add_argument(
        "--site",
        type=Path,
        default=DEFAULT_SITE if DEFAULT_SITE.is_dir() else None,
        help="Static Web Apps folder served at /",
    )
    parser.add_argument(
        "--no-site", dest="site", action="store_const", const=None, help="serve the API only"
    )
    return parser


def checked_arguments(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> argparse.Namespace:
    arguments = parser.parse_args(argv)
    for option, folder in (("--site", arguments.site), ("--app-dir", arguments.app_dir)):
        if folder is not None and not folder.is_dir():
            parser.error(f"{option} {folder}: no such folder")
    return arguments


async def serve_app(arguments: argparse.Namespace) -> None:
    web_app = await host_app_from_settings(arguments.app_dir, arguments.site)
    await serve(web_app, arguments.host, arguments.port)


def main(argv: list[str] | None = None) -> None:
    arguments = checked_arguments(argument_parser(), argv)
    configure_logging()
    try:
        asyncio.run(serve_app(arguments))
    except (ValueError, WorkerFailed) as error:  # a setting, a route or an app it cannot serve
        raise SystemExit(f"local host: {error}") from None


if __name__ == "__main__":
    main()
