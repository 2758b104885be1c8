"""``python -m local_host [--app function_app] [--host localhost] [--port 7071] [--no-site]``:
serve the function app, and the site beside it, without Core Tools."""

from __future__ import annotations

import argparse
from pathlib import Path

from local_host.log_output import configure_logging
from local_host.processes import ExtraProcessFailed, extra_processes
from local_host.server import run, serve, web_app_from_settings
from local_host.settings import APP_ROOT

DEFAULT_SITE = APP_ROOT / "static-web"


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


def main(argv: list[str] | None = None) -> None:
    arguments = checked_arguments(argument_parser(), argv)
    configure_logging()
    try:
        web_app = web_app_from_settings(arguments.app, arguments.site)
        extra = extra_processes(arguments.app, arguments.site)
    except ValueError as error:  # a setting or a route the host cannot serve
        raise SystemExit(f"local host: {error}") from None
    try:
        run(serve(web_app, arguments.host, arguments.port, extra_processes=extra))
    except ExtraProcessFailed as error:
        raise SystemExit(f"local host: {error}") from None


if __name__ == "__main__":
    main()
