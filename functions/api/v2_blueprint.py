"""The Open Inference Protocol (KServe V2) routes beside our own API, under `v2/`: each handler
of `functions/api/v2_handlers.py` declared for its routes, bound to the app's `Services`.
Inference runs in the inference pool, the rest on the event loop."""

from __future__ import annotations

import azure.functions as func

from functions.api import v2_handlers
from functions.api.endpoint import ALL_METHODS, bind, in_pool
from functions.api.responses import v2_error_response
from functions.composition import Services

ANONYMOUS = func.AuthLevel.ANONYMOUS
MODEL = "v2/models/{name}"
VERSION = "v2/models/{name}/versions/{version}"


def v2_blueprint(services: Services) -> func.Blueprint:
    bp = func.Blueprint()
    infer = in_pool(
        bind(v2_handlers.infer, services),
        services.pools.inference,
        answer_error=v2_error_response,
    )
    model_metadata = bind(v2_handlers.model_metadata, services)
    model_ready = bind(v2_handlers.model_ready, services)
    for name, route, declared in (
        ("v2_server_metadata", "v2", bind(v2_handlers.server_metadata, services)),
        ("v2_live", "v2/health/live", bind(v2_handlers.live, services)),
        ("v2_ready", "v2/health/ready", bind(v2_handlers.ready, services)),
        ("v2_model_metadata", MODEL, model_metadata),
        ("v2_model_ready", f"{MODEL}/ready", model_ready),
        ("v2_infer", f"{MODEL}/infer", infer),
        ("v2_version_metadata", VERSION, model_metadata),
        ("v2_version_ready", f"{VERSION}/ready", model_ready),
        ("v2_version_infer", f"{VERSION}/infer", infer),
    ):
        route_declared = bp.route(route=route, methods=ALL_METHODS, auth_level=ANONYMOUS)
        bp.function_name(name)(route_declared(declared))
    return bp
