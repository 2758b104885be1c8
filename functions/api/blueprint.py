"""The HTTP-triggered functions: predict, feedback, health, models and the OpenAPI document,
built around the app's `Services`, which `function_app.py` hands in."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import azure.functions as func

from functions.api.endpoint import AsyncHandler, Handler, endpoint, in_pool, with_context
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
    """The handlers, each wrapped by `endpoint`: what the blueprint declares (predict through
    `in_pool`, which runs it in the inference pool), and what tests call with real
    `func.HttpRequest` objects."""

    predict: Handler
    feedback: AsyncHandler
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
        return feedback_limit or ClientRateLimit.from_settings(services.settings())

    @endpoint("POST")
    def predict(req: func.HttpRequest) -> func.HttpResponse:
        request = parse_prediction_input(
            req.headers.get("Content-Type"), req.get_body(), req.headers.get("Content-Encoding")
        )
        model = services.provider.current()
        answer = classify(model, request)
        return json_response(answer, headers={"X-Model-Version": model.version})

    @endpoint("POST")
    async def feedback(req: func.HttpRequest) -> func.HttpResponse:
        """A correction, stored once (contracts.md section 2a). The checks run on the event loop
        (a body of at most 64 KiB); the storage calls in the storage pool, so that slow storage
        holds its few threads only, and a write it has no room for is refused at once (503)."""
        # Corrections only: a prediction never loads them.
        from functions.feedback.request import parse_feedback  # noqa: PLC0415

        # Unconfigured storage: 503 before anything else.
        store = await services.feedback_store_async()
        corrections_limit().take(client_address(req.headers))
        item = parse_feedback(
            req.headers.get("Content-Type"), req.get_body(), req.headers.get("Content-Encoding")
        )
        return json_response(
            {"item": await services.pools.storage.run(store.save, item)}, status=202
        )

    @endpoint("GET")
    async def health(req: func.HttpRequest) -> func.HttpResponse:
        """From memory only: what the follower last saw of storage, and how long ago. On the
        event loop, so it never queues behind predictions, which run in the inference pool."""
        provider = services.provider
        try:
            model = await services.served_model()
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
        model = await services.served_model()
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
    for route, handler in (
        ("predict", in_pool(functions.predict, services.pools.inference)),
        ("feedback", with_context(functions.feedback)),
        ("health", functions.health),
        ("models", functions.models),
        ("openapi.json", functions.openapi),
    ):
        bp.route(route=route, methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)(handler)
    return bp
