"""The HTTP-triggered functions: predict, feedback, health, models and the OpenAPI document,
built around the app's `Services`, which `function_app.py` hands in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import azure.functions as func

from functions.api.endpoint import Handler, endpoint, small_bodies_on_the_loop
from functions.api.pacing import Pacer
from functions.api.rate_limit import ClientRateLimit, client_address
from functions.api.responses import json_response
from functions.composition import Services
from functions.errors import NoModelAvailable
from functions.serving.inputs import parse_prediction_input
from functions.serving.predict import classify

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
MODELS_PER_SECOND = 50  # per instance: the listing changes at most every MODEL_REFRESH_SECONDS
MODELS_MAX_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class ApiFunctions:
    """The handlers, each wrapped by `endpoint`: what the blueprint declares, and what tests
    call with real `func.HttpRequest` objects."""

    predict: Handler
    feedback: Handler
    health: Handler
    models: Handler
    openapi: Handler


def api_functions(
    services: Services,
    models_pace: Pacer | None = None,
    feedback_limit: ClientRateLimit | None = None,
) -> ApiFunctions:
    models_pace = models_pace or Pacer(MODELS_PER_SECOND, MODELS_MAX_WAIT_SECONDS)

    @cache
    def corrections_limit() -> ClientRateLimit:
        return feedback_limit or ClientRateLimit(services.settings().feedback_per_minute)

    @endpoint("POST")
    def predict(req: func.HttpRequest) -> func.HttpResponse:
        request = parse_prediction_input(
            req.headers.get("Content-Type"), req.get_body(), req.headers.get("Content-Encoding")
        )
        model = services.provider.current()
        answer = classify(model, request)
        return json_response(answer, headers={"X-Model-Version": model.version})

    @endpoint("POST")
    def feedback(req: func.HttpRequest) -> func.HttpResponse:
        """A correction, stored once (contracts.md section 2a). A plain function: the worker
        runs it in its thread pool, so the storage call never holds the event loop."""
        # Corrections only: a prediction never loads them.
        from functions.feedback.request import parse_feedback  # noqa: PLC0415

        store = services.feedback_store()  # unconfigured storage: 503 before anything else
        corrections_limit().take(client_address(req.headers))
        item = parse_feedback(
            req.headers.get("Content-Type"), req.get_body(), req.headers.get("Content-Encoding")
        )
        return json_response({"item": store.save(item)}, status=202)

    @endpoint("GET")
    async def health(req: func.HttpRequest) -> func.HttpResponse:
        """From memory only: what the follower last saw of storage, and how long ago. On the
        event loop, so it never queues behind predictions in the worker's thread pool."""
        provider = services.provider
        try:
            model = await provider.current_async()
        except NoModelAvailable as error:
            return json_response(
                {"status": "unavailable", "detail": provider.last_error or error.detail},
                status=503,
            )
        return json_response(
            {"status": "ok", "model": model.describe(), "storage": provider.storage_status()},
            headers={"X-Model-Version": model.version},
        )

    @endpoint("GET")
    async def models(req: func.HttpRequest) -> func.HttpResponse:
        """From memory only, on the event loop: the listing a background thread keeps fresh,
        with its age. Storage being down shows in `listing.last_error`; the only 503 is for no
        model. Paced: a flood waits its turn instead of taking the CPU that predictions need."""
        await models_pace.wait_turn()
        provider = services.provider
        model = await provider.current_async()
        return json_response({"current": model.describe(), **provider.registry_listing(model)})

    @endpoint("GET")
    async def openapi(req: func.HttpRequest) -> func.HttpResponse:
        from functions.api.openapi import openapi_document  # noqa: PLC0415 - on request only

        return json_response(openapi_document(), headers={"Cache-Control": "public, max-age=300"})

    return ApiFunctions(
        predict=predict, feedback=feedback, health=health, models=models, openapi=openapi
    )


def api_blueprint(services: Services) -> func.Blueprint:
    functions = api_functions(services)
    bp = func.Blueprint()
    predict = small_bodies_on_the_loop(functions.predict, ready=services.model_is_loaded)
    for route, handler in (
        ("predict", predict),
        ("feedback", functions.feedback),
        ("health", functions.health),
        ("models", functions.models),
        ("openapi.json", functions.openapi),
    ):
        bp.route(route=route, methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)(handler)
    return bp
