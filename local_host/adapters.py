"""The contract between the server and the code that serves one kind of trigger."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aiohttp import web

from local_host.discovery import DiscoveredFunction


class TriggerAdapter(Protocol):
    """Serves every function whose trigger has ``trigger_type``.

    Supporting another trigger kind (blob, timer, Event Grid) means writing another
    adapter and passing it to ``build_web_app``; the server itself does not change.
    """

    trigger_type: str

    def attach(self, web_app: web.Application, functions: Sequence[DiscoveredFunction]) -> None:
        """Wire the functions into the web app (routes, background tasks, ...)."""

    def describe(self, function: DiscoveredFunction, base_url: str) -> str:
        """One line for the startup listing, e.g. ``predict: [POST] http://.../api/predict``."""
