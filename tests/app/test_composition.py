"""The composition root: parts built once per process and shared by both blueprints, nothing
read before first use, and HTTP decided in api/ alone."""

from __future__ import annotations

import json

import pytest

from functions import model_contract
from functions.api import handlers, request_errors
from functions.api.blueprint import api_blueprint
from functions.api.problems import PROBLEMS, problem_for
from functions.api.v2_blueprint import v2_blueprint
from functions.composition import Services
from functions.errors import AppError
from functions.feedback.errors import FeedbackError
from functions.promotion.blueprint import promotion_blueprint
from functions.promotion.handlers import reconcile_incoming
from functions.serving import errors as serving_errors
from functions.serving import provider as provider_module
from functions.settings import MissingSetting, settings
from functions.storage.errors import StorageError, StorageUnavailable
from tests.helpers import call, http_request
from tests.stack import REPO_ROOT

FUNCTIONS = REPO_ROOT / "functions"


def test_the_bundled_model_is_loaded_once_for_serving_and_promotion(
    azurite, container, monkeypatch
):
    loads = []
    real_load = provider_module.load_model_file

    def counted_load(*args, **kwargs):
        loads.append(args)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(provider_module, "load_model_file", counted_load)
    monkeypatch.setenv("MODELS_STORAGE", azurite)
    monkeypatch.setenv("MODELS_CONTAINER", container.container_name)
    services = Services(read_settings=settings.__wrapped__)  # this environment, not the cache
    try:
        served = call(handlers.predict, http_request("POST", "predict", [0] * 784), services)
        assert served.status_code == 200
        reconcile_incoming(None, services)  # an empty drop zone: nothing to decide
        promoter = services.promoter()
        assert services.promoter() is promoter
        assert promoter.bundled is services.provider.current()
        health = json.loads(
            call(handlers.health, http_request("GET", "health"), services).get_body()
        )
        assert health["storage"]["following"] is True
        assert len(loads) == 1
    finally:
        services.provider.stop()


def test_nothing_is_read_before_first_use_and_a_missing_setting_is_named():
    def missing():
        raise MissingSetting("MODELS_STORAGE is not set")

    services = Services(read_settings=missing)
    api_blueprint(services)  # declaring reads no settings
    v2_blueprint(services)
    promotion_blueprint(services)
    with pytest.raises(MissingSetting, match="MODELS_STORAGE"):
        reconcile_incoming(None, services)
    try:  # serving does without storage
        response = call(handlers.predict, http_request("POST", "predict", [0] * 784), services)
        assert response.status_code == 200
    finally:
        services.provider.stop()


@pytest.mark.parametrize(
    ("error", "status", "headers"),
    [
        (request_errors.InvalidInput("x"), 400, {}),
        (request_errors.InputTooLarge("x"), 413, {}),
        (request_errors.UnsupportedContent("x"), 415, {}),
        (request_errors.CompressedBody("x"), 415, {"Accept-Encoding": "identity"}),
        (serving_errors.NoModelAvailable("x"), 503, {}),
        (serving_errors.UnknownModel("x"), 404, {}),
        (serving_errors.DecodersBusy("x"), 503, {"Retry-After": "2"}),
        (serving_errors.InferenceBusy("x"), 503, {"Retry-After": "2"}),
        (model_contract.ModelOutputError("x"), 503, {"Retry-After": "2"}),
        (model_contract.InferenceTimeout("x"), 503, {"Retry-After": "2"}),
        (model_contract.ModelRunError("x"), 503, {"Retry-After": "2"}),
        (StorageUnavailable("x"), 503, {"Retry-After": "10"}),
    ],
)
def test_each_domain_error_has_its_status_in_api(error, status, headers):
    answer, _ = problem_for(error)
    assert (int(answer.status), answer.headers) == (status, headers)


@pytest.mark.parametrize(
    "family", [request_errors.RequestError, serving_errors.ServingError, FeedbackError]
)
def test_every_error_of_the_request_serving_and_feedback_families_has_a_problem(family):
    assert issubclass(family, AppError)
    kinds = family.__subclasses__()
    assert kinds
    for kind in kinds:
        assert problem_for(kind("x")) is not None, kind


def test_every_family_shares_the_base():
    for base in (model_contract.UnusableModel, StorageError):
        assert issubclass(base, AppError)
    for kind in (model_contract.InferenceTimeout, model_contract.ModelRunError):
        assert issubclass(kind, model_contract.UnusableModel)


def test_a_bug_has_no_problem_of_its_own():
    assert problem_for(KeyError("pixels")) is None
    assert ValueError not in PROBLEMS
    assert Exception not in PROBLEMS


def test_serving_and_its_errors_know_no_http():
    http_words = (
        "HTTPStatus",
        "functions.api",
        "azure.functions",
        "status_code",
        "Content-Type",
        "Content-Encoding",
        "application/json",
        "image/png",
    )
    for module in [FUNCTIONS / "errors.py", *(FUNCTIONS / "serving").glob("*.py")]:
        text = module.read_text()
        for http_word in http_words:
            assert http_word not in text, f"{module.name} mentions {http_word}"
