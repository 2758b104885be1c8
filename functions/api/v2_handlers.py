"""The Open Inference Protocol (KServe V2) handlers: server metadata, health, model metadata and
readiness, and inference, for the model provider's served model. Each is a module-level function
of the request and the app's `Services`, wrapped by `endpoint` with the protocol's error body
({"error": "..."}, the status our API gives the same error). The model handlers read the optional
`version` route parameter, so one handler serves both routes of its kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions.api import API_TITLE, API_VERSION, v2_model
from functions.api.endpoint import endpoint
from functions.api.responses import NO_STORE, json_response, v2_error_response
from functions.api.v2_request import LENGTH_HEADER, parse_infer_request
from functions.api.v2_response import infer_response
from functions.serving import inference

if TYPE_CHECKING:
    from functions.composition import Services
    from functions.serving.loaded_model import LoadedModel

EXTENSIONS = ["binary_tensor_data"]


def v2(*methods: str):
    return endpoint(*methods, answer_error=v2_error_response)


@v2("GET")
async def server_metadata(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    return json_response({"name": API_TITLE, "version": API_VERSION, "extensions": EXTENSIONS})


@v2("GET")
async def live(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    """The process answers: that is all liveness means here."""
    return _empty_ok()


@v2("GET")
async def ready(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    await services.served_model()  # NoModelAvailable: 503
    return _empty_ok()


@v2("GET")
async def model_metadata(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    model = await services.served_model()
    _check_route(model, req)
    return json_response(v2_model.model_metadata(model), headers={"X-Model-Version": model.version})


@v2("GET")
async def model_ready(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    _check_route(await services.served_model(), req)
    return _empty_ok()


@v2("POST")
def infer(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    """Bytes to images (the codec), images to predictions (serving), predictions to the
    protocol's answer, JSON or binary."""
    model = services.provider.current()
    _check_route(model, req)  # before the body: an unknown model is the first thing to fix
    request = parse_infer_request(
        req.get_body(), req.headers.get(LENGTH_HEADER), req.headers.get("Content-Encoding")
    )
    answer = infer_response(request, inference.infer(model, request.images))
    headers = {**NO_STORE, "X-Model-Version": model.version}
    if not answer.binary:
        return func.HttpResponse(
            answer.body, headers=headers, mimetype="application/json", charset="utf-8"
        )
    headers[LENGTH_HEADER] = str(answer.header_length)
    return func.HttpResponse(answer.body, headers=headers, mimetype="application/octet-stream")


def _check_route(model: LoadedModel, req: func.HttpRequest) -> None:
    v2_model.check_served(model, req.route_params.get("name", ""), req.route_params.get("version"))


def _empty_ok() -> func.HttpResponse:
    """The protocol's health answers: the status says it all, the body is empty."""
    return func.HttpResponse(status_code=200, headers=NO_STORE)
