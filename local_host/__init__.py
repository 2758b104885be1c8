"""A small stand-in for the Azure Functions host, for machines without Core Tools.

It serves the HTTP-triggered functions of a Python v2 ``func.FunctionApp`` over aiohttp,
using the routes and methods the functions declare, runs its timer triggers on schedule and
its Event Grid blob triggers from the host's blob webhook, so ``make run`` and the tests work
where ``func start`` is not installed. ``func start`` stays the reference host.

``python -m local_host.blob_events`` stands in for Event Grid over Azurite, and
``python -m local_host.dev`` runs Azurite, the host and that stand-in together.
"""

from local_host.server import build_web_app, serve, startup_listing

__all__ = ["build_web_app", "serve", "startup_listing"]
