"""The HTTP-triggered functions: predict, health, models and the OpenAPI document."""

from __future__ import annotations

import logging

import azure.functions as func
from azure.core.exceptions import AzureError

from functions.api.endpoint import endpoint
from functions.api.openapi import openapi_document
from functions.api.responses import json_response
from functions.errors import ServiceUnavailable
from functions.serving.inputs import parse_prediction_input
from functions.serving.predict import classify
from functions.serving.provider import ModelProvider

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

RECENT_DECISIONS = 20
log = logging.getLogger(__name__)

bp = func.Blueprint()
provider = ModelProvider()


@bp.route(route="predict", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@endpoint("POST")
def predict(req: func.HttpRequest) -> func.HttpResponse:
    request = parse_prediction_input(req.headers.get("Content-Type"), req.get_body())
    model = provider.current()
    return json_response(classify(model, request), headers={"X-Model-Version": model.version})


@bp.route(route="health", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@endpoint("GET")
def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        model = provider.current()
    except ServiceUnavailable as error:
        return json_response(
            {"status": "unavailable", "detail": provider.last_error or error.detail}, status=503
        )
    return json_response(
        {"status": "ok", "model": model.describe(), "storage": provider.storage_status()},
        headers={"X-Model-Version": model.version},
    )


@bp.route(route="models", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@endpoint("GET")
def models(req: func.HttpRequest) -> func.HttpResponse:
    current = provider.current().describe()
    if provider.registry is None:  # no storage: the bundled model is all there is
        return json_response({"current": current, "versions": [current], "decisions": []})
    try:
        pointer = provider.registry.read_pointer()
        versions = provider.registry.versions()
        decisions = provider.registry.recent_decisions(RECENT_DECISIONS)
    except AzureError as error:
        log.warning("model storage failed while listing models", exc_info=True)
        raise ServiceUnavailable("model storage cannot be reached right now") from error
    except ValueError as error:  # current.json is not JSON: the promoter never writes that
        log.warning("current.json is unreadable", exc_info=True)
        raise ServiceUnavailable("model storage holds an unreadable current.json") from error
    return json_response(
        {
            "current": current,
            "pointer": pointer.document if pointer else None,
            "versions": versions,
            "decisions": decisions,
        }
    )


@bp.route(route="openapi.json", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@endpoint("GET")
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(openapi_document(), headers={"Cache-Control": "public, max-age=300"})
