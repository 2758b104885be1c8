"""Our API's routes: each handler of `functions/api/handlers.py` declared for its route, bound
to the app's `Services`, which `function_app.py` hands in. Predict runs in the inference pool;
the rest on the event loop (feedback hands its writes to the storage pool)."""

from __future__ import annotations

import azure.functions as func

from functions.api import handlers
from functions.api.endpoint import ALL_METHODS, bind, in_pool, with_context
from functions.composition import Services


def api_blueprint(services: Services) -> func.Blueprint:
    bp = func.Blueprint()
    for route, declared in (
        ("predict", in_pool(bind(handlers.predict, services), services.pools.inference)),
        ("feedback", with_context(bind(handlers.feedback, services))),
        ("health", bind(handlers.health, services)),
        ("models", bind(handlers.models, services)),
        ("openapi.json", bind(handlers.openapi, services)),
    ):
        bp.route(route=route, methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)(declared)
    return bp
