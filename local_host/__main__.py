"""``python -m local_host [--app-dir .] [--host localhost] [--port 7071]``: serve the function app
in a folder (its ``function_app.py``) through azure-functions-runtime, without Core Tools."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from local_host.server import configure_logging, host_app_from_settings, serve
from local_host.settings import APP_ROOT
from local_host.worker import WorkerFailed


def folder(text: str) -> Path:
    """An argument naming a folder that exists."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return Path(text)


def argument_parser(prog: str = "python -m local_host") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split(":", 1)[1].strip())
    parser.add_argument(
        "--app-dir", type=folder, default=APP_ROOT, help="the function app's folder"
    )
    parser.add_argument("--host", default="localhost", help="interface to listen on")
    parser.add_argument("--port", type=int, default=7071, help="0 picks a free port")
    return parser


async def serve_app(arguments: argparse.Namespace) -> None:
    await serve(await host_app_from_settings(arguments.app_dir), arguments.host, arguments.port)


def main(argv: list[str] | None = None) -> None:
    arguments = argument_parser().parse_args(argv)
    configure_logging()
    try:
        asyncio.run(serve_app(arguments))
    except (ValueError, WorkerFailed) as error:  # a setting, a route or an app it cannot serve
        raise SystemExit(f"local host: {error}") from None


if __name__ == "__main__":
    main()
