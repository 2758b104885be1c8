"""The Open Inference Protocol (KServe V2) REST surface beside our own API: server metadata,
health, model metadata and readiness, and inference, under `v2/`, for the model provider's
served model. Errors are the protocol's {"error": "..."} with the status our API gives them."""

from __future__ import annotations

from dataclasses import dataclass

import azure.functions as func

from functions.api import API_TITLE, API_VERSION
from functions.api.blueprint import ALL_METHODS
from functions.api.endpoint import Handler, endpoint, in_pool
from functions.api.responses import NO_STORE, json_response, v2_error_response
from functions.composition import Services
from functions.serving.predict import run_model
from functions.serving.v2_model import check_served, model_metadata
from functions.serving.v2_request import parse_infer_request
from functions.serving.v2_response import infer_response

ANONYMOUS = func.AuthLevel.ANONYMOUS
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]
MODEL = "v2/models/{name}"
VERSION = "v2/models/{name}/versions/{version}"


@dataclass(frozen=True)
class V2Functions:
    """The handlers, each wrapped by `endpoint` (infer declared through `in_pool`, which runs it
    in the inference pool). The model handlers read the optional `version` route parameter, so
    one handler serves both routes of its kind."""

    server_metadata: Handler
    live: Handler
    ready: Handler
    model_metadata: Handler
    model_ready: Handler
    infer: Handler


def v2_functions(services: Services) -> V2Functions:
    def v2(*methods: str):
        return endpoint(*methods, answer_error=v2_error_response)

    @v2("GET")
    async def server_metadata(req: func.HttpRequest) -> func.HttpResponse:
        return json_response({"name": API_TITLE, "version": API_VERSION, "extensions": EXTENSIONS})

    @v2("GET")
    async def live(req: func.HttpRequest) -> func.HttpResponse:
        """The process answers: that is all liveness means here."""
        return _empty_ok()

    @v2("GET")
    async def ready(req: func.HttpRequest) -> func.HttpResponse:
        await services.served_model()  # NoModelAvailable: 503
        return _empty_ok()

    @v2("GET")
    async def metadata(req: func.HttpRequest) -> func.HttpResponse:
        model = await services.served_model()
        _check_route(model, req)
        return json_response(model_metadata(model), headers={"X-Model-Version": model.version})

    @v2("GET")
    async def model_ready(req: func.HttpRequest) -> func.HttpResponse:
        _check_route(await services.served_model(), req)
        return _empty_ok()

    @v2("POST")
    def infer(req: func.HttpRequest) -> func.HttpResponse:
        model = services.provider.current()
        _check_route(model, req)  # before the body: an unknown model is the first thing to fix
        request = parse_infer_request(
            req.get_body(), req.headers.get(HEADER_LENGTH), req.headers.get("Content-Encoding")
        )
        probabilities = run_model(model, request.images)  # checked in LoadedModel.predict
        answer = infer_response(request, probabilities, model.version)
        headers = {**NO_STORE, "X-Model-Version": model.version}
        if not answer.binary:
            return func.HttpResponse(
                answer.body, headers=headers, mimetype="application/json", charset="utf-8"
            )
        headers[HEADER_LENGTH] = str(answer.header_length)
        return func.HttpResponse(answer.body, headers=headers, mimetype="application/octet-stream")

    return V2Functions(
        server_metadata=server_metadata,
        live=live,
        ready=ready,
        model_metadata=metadata,
        model_ready=model_ready,
        infer=infer,
    )


def v2_blueprint(services: Services) -> func.Blueprint:
    functions = v2_functions(services)
    bp = func.Blueprint()
    # In the inference pool, never on the event loop (functions/pools.py).
    infer = in_pool(functions.infer, services.pools.inference, answer_error=v2_error_response)
    for name, route, handler in (
        ("v2_server_metadata", "v2", functions.server_metadata),
        ("v2_live", "v2/health/live", functions.live),
        ("v2_ready", "v2/health/ready", functions.ready),
        ("v2_model_metadata", MODEL, functions.model_metadata),
        ("v2_model_ready", f"{MODEL}/ready", functions.model_ready),
        ("v2_infer", f"{MODEL}/infer", infer),
        ("v2_version_metadata", VERSION, functions.model_metadata),
        ("v2_version_ready", f"{VERSION}/ready", functions.model_ready),
        ("v2_version_infer", f"{VERSION}/infer", infer),
    ):
        route_declared = bp.route(route=route, methods=ALL_METHODS, auth_level=ANONYMOUS)
        bp.function_name(name)(route_declared(handler))
    return bp


def _check_route(model, req: func.HttpRequest) -> None:
    check_served(model, req.route_params.get("name", ""), req.route_params.get("version"))


def _empty_ok() -> func.HttpResponse:
    """The protocol's health answers: the status says it all, the body is empty."""
    return func.HttpResponse(status_code=200, headers=NO_STORE)
