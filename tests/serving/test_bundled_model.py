"""The model the app ships and serves when storage holds no promoted version."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conversion.negatives import held_out_negatives
from functions.model_contract import REQUIRED_METADATA, DigitRule, digit_rule
from tests.stack import REPO_ROOT

BUNDLED = REPO_ROOT / "functions" / "model"
MODEL = BUNDLED / "model.onnx"


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    return ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])


def outputs(session, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both outputs for `images` ((n, 28, 28) 0..255), in batches."""
    images = images.astype(np.float32)[..., np.newaxis]
    runs = [
        session.run(None, {"pixels": images[i : i + 2000]}) for i in range(0, len(images), 2000)
    ]
    return tuple(np.concatenate([run[k] for run in runs]) for k in range(2))


@pytest.fixture(scope="module")
def test_outputs(session, mnist) -> tuple[np.ndarray, np.ndarray]:
    return outputs(session, mnist["x_test"])


@pytest.fixture(scope="module")
def test_probabilities(test_outputs) -> np.ndarray:
    return test_outputs[0]


@pytest.fixture(scope="module")
def rule() -> DigitRule:
    metadata = {prop.key: prop.value for prop in onnx.load(MODEL).metadata_props}
    found = digit_rule(metadata, ["probabilities", "not_digit"])
    assert found is not None, "the bundled model declares how it tells a digit"
    return found


def test_interface_follows_the_contract(session):
    (model_input,) = session.get_inputs()
    probabilities, not_digit = session.get_outputs()
    assert model_input.name == "pixels"
    assert model_input.type == "tensor(float)"
    assert model_input.shape[1:] == [28, 28, 1]
    assert isinstance(model_input.shape[0], str)  # a dynamic batch dimension
    assert probabilities.name == "probabilities"
    assert probabilities.type == "tensor(float)"
    assert probabilities.shape[1:] == [10]
    assert not_digit.name == "not_digit"
    assert not_digit.type == "tensor(float)"
    assert len(not_digit.shape) == 1


def test_it_flags_few_digits_and_most_things_that_are_none(session, test_outputs, rule):
    """The issue's targets: at most 1% of MNIST test digits flagged, at least 90% of held-out
    non-digits (fonts and shapes training never saw), and noise, which 1.2.0 read as digits
    with a confidence of 1.0."""
    probabilities, not_digit = test_outputs
    assert np.mean(~rule.is_digit(probabilities, not_digit)) <= 0.01
    negatives = held_out_negatives(300)
    assert np.mean(~rule.is_digit(*outputs(session, negatives))) >= 0.9
    noise = np.random.default_rng(0).integers(0, 256, (50, 28, 28))
    assert not rule.is_digit(*outputs(session, noise)).any()


def test_metadata_describes_the_model():
    metadata = {prop.key: prop.value for prop in onnx.load(MODEL).metadata_props}
    assert set(metadata) >= set(REQUIRED_METADATA)
    assert metadata["created_at"].endswith("Z")
    assert len(metadata["training_data_sha256"]) == 64
    assert float(metadata["test_accuracy"]) >= 0.995


def test_rows_are_probabilities(test_probabilities):
    assert test_probabilities.shape == (10_000, 10)
    assert np.all(test_probabilities >= 0)
    np.testing.assert_allclose(test_probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_accuracy_on_the_full_test_set(test_probabilities, mnist):
    accuracy = float(np.mean(test_probabilities.argmax(axis=1) == mnist["y_test"]))
    assert accuracy >= 0.995, f"bundled model accuracy {accuracy:.4f} is under 99.5%"


def test_size_and_report_travel_with_it():
    assert MODEL.stat().st_size <= 2 * 1024 * 1024
    report = json.loads((BUNDLED / "report.json").read_text())
    metadata = {prop.key: prop.value for prop in onnx.load(MODEL).metadata_props}
    assert report["metadata"]["version"] == metadata["version"]
    assert (BUNDLED / "MODEL_CARD.md").is_file()
    assert (BUNDLED / "confusion_matrix.png").is_file()
