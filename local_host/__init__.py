"""A small stand-in for the Azure Functions host, for machines without Core Tools.

It serves what ``function_app.py`` declares (HTTP routes under the host.json prefix, Event Grid
blob triggers at the host's webhook, timers), with the site beside them; ``event_grid`` stands
in for Event Grid over Azurite and ``dev`` runs the whole stack. The real worker is the reference.
"""

from local_host.server import build_web_app, serve, startup_listing

__all__ = ["build_web_app", "serve", "startup_listing"]
