"""The composition root: parts built once per process and shared by both blueprints, nothing
read before first use, and HTTP decided in api/ alone."""

from __future__ import annotations

import json

import pytest

from functions import errors
from functions.api.blueprint import api_functions
from functions.api.problems import PROBLEMS, problem_for
from functions.composition import Services
from functions.preprocessing import DecodersBusy
from functions.promotion.blueprint import promotion_functions
from functions.serving import provider as provider_module
from functions.settings import MissingSetting, settings
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
    api = api_functions(services)
    promotion = promotion_functions(services)
    try:
        served = call(api.predict, http_request("POST", "predict", [0] * 784))
        assert served.status_code == 200
        promotion.reconcile_incoming(None)  # an empty drop zone: nothing to decide
        promoter = services.promoter()
        assert services.promoter() is promoter
        assert promoter.bundled is services.provider.current()
        health = json.loads(call(api.health, http_request("GET", "health")).get_body())
        assert health["storage"]["following"] is True
        assert len(loads) == 1
    finally:
        services.provider.stop()


def test_nothing_is_read_before_first_use_and_a_missing_setting_is_named():
    def missing():
        raise MissingSetting("MODELS_STORAGE is not set")

    services = Services(read_settings=missing)
    api_functions(services)
    functions = promotion_functions(services)  # declaring reads no settings
    with pytest.raises(MissingSetting, match="MODELS_STORAGE"):
        functions.reconcile_incoming(None)
    try:  # serving does without storage
        response = call(api_functions(services).predict, http_request("POST", "predict", [0] * 784))
        assert response.status_code == 200
    finally:
        services.provider.stop()


@pytest.mark.parametrize(
    ("error", "status", "headers"),
    [
        (errors.InvalidInput("x"), 400, {}),
        (errors.InputTooLarge("x"), 413, {}),
        (errors.UnsupportedContent("x"), 415, {}),
        (errors.CompressedBody("x"), 415, {"Accept-Encoding": "identity"}),
        (errors.NoModelAvailable("x"), 503, {}),
        (DecodersBusy("x"), 503, {"Retry-After": "2"}),
    ],
)
def test_each_domain_error_has_its_status_in_api(error, status, headers):
    answer, _ = problem_for(error)
    assert (int(answer.status), answer.headers) == (status, headers)


def test_a_bug_has_no_problem_of_its_own():
    assert problem_for(KeyError("pixels")) is None
    assert ValueError not in PROBLEMS
    assert Exception not in PROBLEMS


def test_serving_and_its_errors_know_no_http():
    for module in [FUNCTIONS / "errors.py", *(FUNCTIONS / "serving").glob("*.py")]:
        text = module.read_text()
        for http_word in ("HTTPStatus", "functions.api", "azure.functions", "status_code"):
            assert http_word not in text, f"{module.name} mentions {http_word}"
