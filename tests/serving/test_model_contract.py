"""The model contract's one home: its names and metadata keys as contracts.md section 1 states
them, and the interface check that serving, the gate's trial and training share."""

from __future__ import annotations

import numpy as np
import pytest

from functions.model_contract import (
    ALLOWED_OPERATORS,
    CONTROL_FLOW_OPERATORS,
    INPUT_NAME,
    IS_DIGIT_RULE_KEY,
    MAX_BATCH,
    NOT_DIGIT_NAME,
    OPSETS,
    OUTPUT_NAME,
    RANDOM_OPERATORS,
    REQUIRED_METADATA,
    SETTING_INPUTS,
    SHAPE_BATCHES,
    SHAPE_CARRIERS,
    VALUE_SIZED_OPERATORS,
    DigitRule,
    ModelContractError,
    ModelGraphError,
    ModelLoadError,
    ModelOutputError,
    UnusableModel,
    check_not_digit,
    check_probabilities,
    digit_rule,
    missing_metadata,
    open_session,
    run_inference,
)
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

    rows = run_inference(session, np.zeros((3, 28, 28, 1), dtype=np.float32)).probabilities

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


# -- is it a digit? The second output and the rule a model declares ----------------------------


def test_the_not_digit_names_are_the_documented_ones():
    assert (NOT_DIGIT_NAME, IS_DIGIT_RULE_KEY) == ("not_digit", "is_digit_rule")


@pytest.mark.parametrize(
    ("text", "score", "threshold"),
    [
        ("not_digit < 0.5", "not_digit", 0.5),
        ("not_digit < 1", "not_digit", 1.0),
        ("confidence >= 0.97", "confidence", 0.97),
        ("confidence >= .9", "confidence", 0.9),
    ],
)
def test_a_declared_rule_is_read(text, score, threshold):
    rule = digit_rule({IS_DIGIT_RULE_KEY: text}, ["probabilities", "not_digit"])

    assert rule == DigitRule(score, threshold)
    assert str(digit_rule({IS_DIGIT_RULE_KEY: str(rule)}, ["probabilities", "not_digit"])) == str(
        rule
    )


def test_a_model_without_the_key_declares_no_rule():
    assert digit_rule({"version": "old"}, ["probabilities"]) is None


@pytest.mark.parametrize(
    "text",
    [
        "not_digit<0.5",
        "not_digit < 0",
        "not_digit < 1.5",
        "confidence > 0.5",
        "confidence >= 0.5 ",
        "not_digit < nan",
        "logits < 0.5",
        "",
    ],
)
def test_a_malformed_rule_is_a_contract_error(text):
    with pytest.raises(ModelContractError, match=r"is_digit_rule|threshold"):
        digit_rule({IS_DIGIT_RULE_KEY: text}, ["probabilities", "not_digit"])


def test_a_rule_naming_an_absent_output_is_a_contract_error():
    with pytest.raises(ModelContractError, match="does not have"):
        digit_rule({IS_DIGIT_RULE_KEY: "not_digit < 0.5"}, ["probabilities"])
    assert digit_rule({IS_DIGIT_RULE_KEY: "confidence >= 0.9"}, ["probabilities"]) is not None


def test_a_rule_decides_each_image():
    probabilities = np.array([[0.95] + [0.05 / 9] * 9, [0.5, 0.5] + [0.0] * 8], dtype=np.float32)
    not_digit = np.array([0.1, 0.7], dtype=np.float32)

    assert DigitRule("not_digit", 0.5).is_digit(probabilities, not_digit).tolist() == [True, False]
    assert DigitRule("confidence", 0.9).is_digit(probabilities, None).tolist() == [True, False]
    with pytest.raises(ModelContractError):
        DigitRule("not_digit", 0.5).is_digit(probabilities, None)


def test_the_not_digit_output_is_checked():
    check_not_digit(np.array([0.0, 0.5, 1.0], dtype=np.float32), 3)
    for values, count in [
        (np.zeros((3, 1), np.float32), 3),
        (np.zeros(2, np.float32), 3),
        (np.array([0.1, np.nan], np.float32), 2),
        (np.array([0.1, 1.5], np.float32), 2),
        (np.array([-0.1], np.float32), 1),
    ]:
        with pytest.raises(ModelOutputError):
            check_not_digit(values, count)


def test_a_model_without_not_digit_answers_its_probabilities_and_none():
    session = open_session(tiny_model("v1"))
    images = np.zeros((2, 28, 28, 1), dtype=np.float32)

    outputs = run_inference(session, images)

    assert outputs.probabilities.shape == (2, 10)
    assert outputs.not_digit is None


def test_the_bundled_model_answers_both_outputs_under_its_rule():
    import onnx  # noqa: PLC0415 - only to read the metadata here

    session = open_session(BUNDLED_MODEL.read_bytes())
    metadata = {prop.key: prop.value for prop in onnx.load(BUNDLED_MODEL).metadata_props}
    rule = digit_rule(metadata, [item.name for item in session.get_outputs()])
    images = load_gate_set_negatives_and_digits()

    outputs = run_inference(session, images)

    check_probabilities(outputs.probabilities, len(images))
    if rule is not None and outputs.not_digit is not None:
        check_not_digit(outputs.not_digit, len(images))
        assert rule.is_digit(outputs.probabilities, outputs.not_digit).dtype == bool


def load_gate_set_negatives_and_digits() -> np.ndarray:
    with np.load(BUNDLED_MODEL.parent / "gate_set.npz") as archive:
        images = archive["images"][:8]
        negatives = archive["negatives"][:8] if "negatives" in archive.files else images[:0]
    return np.concatenate([images, negatives]).astype(np.float32)[..., np.newaxis]
