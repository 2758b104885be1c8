"""A small stand-in for the Azure Functions host, for machines without Core Tools.

It serves what a Python v2 ``func.FunctionApp`` declares: its HTTP routes under the host.json
prefix, its Event Grid blob triggers at the host's blob webhook and its timers on schedule,
with the site beside them. ``python -m local_host.blob_events`` stands in for Event Grid over
Azurite, and ``python -m local_host.dev`` runs Azurite, the host and that stand-in together.
The real Functions worker stays the reference.
"""

from local_host.server import build_web_app, serve, startup_listing

__all__ = ["build_web_app", "serve", "startup_listing"]
