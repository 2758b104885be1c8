"""The model the app ships and serves when storage holds no promoted version."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from functions.model_contract import REQUIRED_METADATA
from tests.stack import REPO_ROOT

BUNDLED = REPO_ROOT / "functions" / "model"
MODEL = BUNDLED / "model.onnx"


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    return ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def test_probabilities(session, mnist) -> np.ndarray:
    images = mnist["x_test"].astype(np.float32)[..., np.newaxis]
    return np.concatenate(
        [session.run(None, {"pixels": images[i : i + 2000]})[0] for i in range(0, 10_000, 2000)]
    )


def test_interface_follows_the_contract(session):
    (model_input,) = session.get_inputs()
    (model_output,) = session.get_outputs()
    assert model_input.name == "pixels"
    assert model_input.type == "tensor(float)"
    assert model_input.shape[1:] == [28, 28, 1]
    assert isinstance(model_input.shape[0], str)  # a dynamic batch dimension
    assert model_output.name == "probabilities"
    assert model_output.type == "tensor(float)"
    assert model_output.shape[1:] == [10]


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
