"""What the real worker indexes is what the app declares."""

from __future__ import annotations

import json

import function_app

EXPECTED_FUNCTIONS = {
    "predict",
    "feedback",
    "health",
    "models",
    "openapi",
    "v2_server_metadata",
    "v2_live",
    "v2_ready",
    "v2_model_metadata",
    "v2_model_ready",
    "v2_infer",
    "v2_version_metadata",
    "v2_version_ready",
    "v2_version_infer",
    "promote_model",
    "reconcile_incoming",
}


def test_the_worker_indexes_the_functions_the_app_declares(worker):
    declared = {
        function.get_function_name(): json.loads(function.get_function_json())["bindings"]
        for function in function_app.app.get_functions()
    }
    indexed = {
        name: [json.loads(binding) for binding in metadata.raw_bindings]
        for name, metadata in worker.functions.items()
    }

    assert set(indexed) == EXPECTED_FUNCTIONS
    assert indexed == declared
