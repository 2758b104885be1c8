"""The model contract's one home: its names and metadata keys as contracts.md section 1 states
them, and the interface check that serving, the gate's trial and training share."""

from __future__ import annotations

import numpy as np
import pytest

from functions.model_contract import (
    ALLOWED_OPERATORS,
    CONTROL_FLOW_OPERATORS,
    INPUT_NAME,
    OPSETS,
    OUTPUT_NAME,
    RANDOM_OPERATORS,
    REQUIRED_METADATA,
    SETTING_INPUTS,
    SHAPE_BATCHES,
    SHAPE_CARRIERS,
    VALUE_SIZED_OPERATORS,
    ModelContractError,
    ModelGraphError,
    ModelLoadError,
    UnusableModel,
    missing_metadata,
    open_session,
    run_inference,
)
from functions.serving.inputs import MAX_BATCH
from functions.serving.provider import BUNDLED_MODEL
from tests.helpers import tiny_model


def test_the_names_and_metadata_keys_are_the_documented_ones():
    assert (INPUT_NAME, OUTPUT_NAME) == ("pixels", "probabilities")
    assert set(REQUIRED_METADATA) == {
        "version",
        "created_at",
        "test_accuracy",
        "training_data_sha256",
        "framework",
        "source_commit",
    }


def test_a_conforming_file_answers_one_row_of_ten_per_image():
    session = open_session(tiny_model("v1"))

    rows = run_inference(session, np.zeros((3, 28, 28, 1), dtype=np.float32))

    assert rows.shape == (3, 10)
    assert np.allclose(rows.sum(axis=1), 1.0, atol=1e-5)


def test_a_channels_first_file_is_refused_naming_the_expected_shape():
    with pytest.raises(ModelContractError, match=r"pixels has shape .*expected \['N', 28, 28, 1\]"):
        open_session(tiny_model("v1", channels_first=True))


def test_bytes_that_are_no_model_are_a_load_error_caused_by_onnxruntime():
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load the file") as raised:
        open_session(b"not an onnx file")
    assert raised.value.__cause__ is not None


def test_missing_metadata_lists_what_is_absent_in_the_contracts_order():
    assert missing_metadata({"version": "v1", "framework": "x"}) == [
        "created_at",
        "test_accuracy",
        "training_data_sha256",
        "source_commit",
    ]
    assert missing_metadata(dict.fromkeys(REQUIRED_METADATA, "")) == []


def test_the_operator_list_holds_what_the_bundled_model_uses_and_nothing_that_spends_freely():
    import onnx  # noqa: PLC0415 - the app's side of the contract never imports onnx

    model = onnx.load(BUNDLED_MODEL)
    assert {node.op_type for node in model.graph.node} <= ALLOWED_OPERATORS
    opset = next(entry.version for entry in model.opset_import if entry.domain == "")
    assert opset in OPSETS
    for refused in (CONTROL_FLOW_OPERATORS, RANDOM_OPERATORS, VALUE_SIZED_OPERATORS):
        assert not refused & ALLOWED_OPERATORS
    assert {"Loop", "If", "Scan"} <= CONTROL_FLOW_OPERATORS
    assert {"RandomUniform", "RandomNormal", "Bernoulli", "Multinomial"} <= RANDOM_OPERATORS
    assert {"ConstantOfShape", "Expand", "Tile", "Range", "NonZero"} <= VALUE_SIZED_OPERATORS
    assert set(SETTING_INPUTS) <= ALLOWED_OPERATORS
    assert SHAPE_CARRIERS <= ALLOWED_OPERATORS


def test_shapes_are_inferred_at_one_image_and_at_the_apis_largest_batch():
    assert SHAPE_BATCHES == (1, MAX_BATCH)


def test_a_graph_refusal_is_an_unusable_model():
    assert issubclass(ModelGraphError, UnusableModel)
