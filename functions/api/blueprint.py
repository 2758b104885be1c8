"""The HTTP-triggered functions: predict, health, models and the OpenAPI document."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.api.endpoint import endpoint
from functions.api.openapi import openapi_document
from functions.api.pacing import Pacer
from functions.api.responses import json_response
from functions.errors import ServiceUnavailable
from functions.preprocessing import DecodersBusy
from functions.serving.inputs import parse_prediction_input
from functions.serving.model import ModelOutputError
from functions.serving.predict import classify
from functions.serving.provider import ModelProvider

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
DECODERS_BUSY_RETRY_AFTER = "2"  # seconds: a picture takes well under one to prepare
MODELS_PER_SECOND = 50  # per instance: the listing changes at most every MODEL_REFRESH_SECONDS
MODELS_MAX_WAIT_SECONDS = 2.0

log = logging.getLogger(__name__)

bp = func.Blueprint()
provider = ModelProvider()
models_pace = Pacer(MODELS_PER_SECOND, MODELS_MAX_WAIT_SECONDS)


@bp.route(route="predict", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@endpoint("POST")
def predict(req: func.HttpRequest) -> func.HttpResponse:
    try:
        request = parse_prediction_input(
            req.headers.get("Content-Type"), req.get_body(), req.headers.get("Content-Encoding")
        )
    except DecodersBusy as error:
        log.warning("picture refused: %s", error)
        raise ServiceUnavailable(
            "too many pictures are being prepared right now; retry shortly",
            headers={"Retry-After": DECODERS_BUSY_RETRY_AFTER},
        ) from error
    model = provider.current()
    try:
        answer = classify(model, request)
    except ModelOutputError as error:  # a model that lies about batches: never a wrong answer
        log.error("%s", error)
        raise ServiceUnavailable(
            "the served model gave an answer of the wrong shape; it has been logged"
        ) from error
    return json_response(answer, headers={"X-Model-Version": model.version})


@bp.route(route="health", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@endpoint("GET")
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """From memory only: what the follower last saw of storage, and how long ago. On the event
    loop, so it never queues behind predictions in the worker's thread pool."""
    try:
        model = await provider.current_async()
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
async def models(req: func.HttpRequest) -> func.HttpResponse:
    """From memory only, on the event loop: the listing a background thread keeps fresh, with
    its age. Storage being down shows in `listing.last_error`; the only 503 is for no model.
    Paced: a flood waits its turn instead of taking the CPU that predictions need."""
    await models_pace.wait_turn()
    model = await provider.current_async()
    return json_response({"current": model.describe(), **provider.registry_listing(model)})


@bp.route(route="openapi.json", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@endpoint("GET")
async def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(openapi_document(), headers={"Cache-Control": "public, max-age=300"})
