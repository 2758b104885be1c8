"""A tiny end-to-end run of the training pipeline: train -> convert -> verify -> evaluate, with
people's corrections added to its training data (duplicates, an ambiguous pair and malformed
items among them)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from conversion.feedback import HELD_OUT_FRACTION, REPEAT
from conversion.pipeline import run_pipeline
from conversion.train import DEFAULT_RECIPE, RECIPES, TrainingSettings
from conversion.verify import VerificationError, verify_against_keras
from functions.model_contract import (
    REQUIRED_METADATA,
    check_declared_interface,
    check_graph,
    digit_rule,
)
from tests.conftest import mnist_path
from tests.helpers import contract_item_id
from tests.stack import REPO_ROOT
from tests.training.test_feedback_training import boxes, feedback_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def feedback(tmp_path_factory):
    """40 hollow boxes corrected to 7 (MNIST has no such 7), with 3 copies under other names,
    a drawing corrected both to 1 and to 4, and 2 malformed files."""
    return feedback_folder(tmp_path_factory.mktemp("feedback"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, feedback):
    out = tmp_path_factory.mktemp("tiny-model")
    # Enough steps (400) for batch normalisation's running statistics to settle.
    settings = TrainingSettings(epochs=2, batch_size=32, limit=8000, seed=7)
    folder, _ = feedback
    report = run_pipeline(
        str(mnist_path()), out, settings, version="tiny-test", feedback=str(folder)
    )
    return out, report


def test_writes_every_artifact_into_one_folder(tiny_run):
    out, _ = tiny_run
    names = {path.name for path in out.iterdir()}
    assert names == {"model.onnx", "report.json", "confusion_matrix.png", "MODEL_CARD.md"}
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (out / "MODEL_CARD.md").read_text()
    assert "# Model card: tiny-test" in card
    assert "Intended use and limits" in card


def test_model_follows_the_contract(tiny_run):
    out, report = tiny_run
    model = onnx.load(out / "model.onnx")
    (graph_input,) = model.graph.input
    graph_output = model.graph.output[0]
    assert graph_input.name == "pixels"
    assert graph_output.name == "probabilities"
    input_dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    output_dims = [d.dim_param or d.dim_value for d in graph_output.type.tensor_type.shape.dim]
    assert input_dims == ["N", 28, 28, 1]
    assert output_dims == ["N", 10]
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert set(REQUIRED_METADATA) <= set(metadata)
    assert metadata["version"] == "tiny-test"
    # The default recipe knows what is not a digit: a second output, and the rule that uses it.
    assert RECIPES[DEFAULT_RECIPE].not_digit
    (not_digit,) = model.graph.output[1:]
    assert not_digit.name == "not_digit"
    assert [d.dim_param or d.dim_value for d in not_digit.type.tensor_type.shape.dim] == ["N"]
    rule = digit_rule(metadata, [value.name for value in model.graph.output])
    assert str(rule) == report["training"]["is_digit_rule"] == metadata["is_digit_rule"]
    check_declared_interface(model)
    check_graph(model)
    assert float(metadata["test_accuracy"]) == pytest.approx(
        report["evaluation"]["test_accuracy"], abs=1e-4
    )


def test_report_carries_the_figures(tiny_run):
    out, report = tiny_run
    saved = json.loads((out / "report.json").read_text())
    assert saved["metadata"] == report["metadata"]
    evaluation = saved["evaluation"]
    matrix = np.array(evaluation["confusion_matrix"])
    assert matrix.shape == (10, 10)
    assert matrix.sum() == evaluation["test_images"] == 10_000
    assert np.trace(matrix) / matrix.sum() == pytest.approx(evaluation["test_accuracy"])
    # Two short epochs on a few thousand digits already learn something real.
    assert evaluation["test_accuracy"] > 0.9
    assert saved["verification"]["argmax_disagreements"] == 0
    assert saved["verification"]["max_probability_difference"] <= 1e-4
    figures = evaluation["not_digit"]
    for key in (
        "test_flagged_share",
        "kept_accuracy",
        "test_ece",
        "held_out_flagged_share",
        "pen_accuracy",
        "pen_flagged_share",
        "pen_ece",
    ):
        assert 0.0 <= figures[key] <= 1.0, key
    assert (figures["held_out_negatives"], figures["pen_digits"]) == (1000, 2000)
    assert saved["training"]["additions"] == {"negatives": 1200, "pen_digits": 533}
    training = saved["training"]
    assert training["settings"]["recipe"] == DEFAULT_RECIPE
    if RECIPES[DEFAULT_RECIPE].hold_out:
        assert training["fit_images"] + training["validation_images"] == 8000
        assert len(training["history"]["val_accuracy"]) == 2
    else:  # all the images trained on, and the last epoch shipped
        assert (training["fit_images"], training["validation_images"]) == (8000, 0)
        assert (training["best_epoch"], training["best_validation_accuracy"]) == (2, None)
        assert "val_accuracy" not in training["history"]


def test_the_feedback_was_read_de_duplicated_and_trained_on(tiny_run, feedback):
    out, report = tiny_run
    folder, counts = feedback
    saved = json.loads((out / "report.json").read_text())
    recorded = saved["feedback"]
    assert recorded == report["feedback"]
    assert recorded["source"] == str(folder)
    assert {key: recorded[key] for key in counts} == counts
    # The 40 boxes split by id; the held-out ones are never trained on.
    ids = [contract_item_id(np.array(d["pixels"]), d["label"]) for d in boxes(40)]
    held_out = [i for i in ids if int(i[:8], 16) < HELD_OUT_FRACTION * 2**32]
    assert recorded["held_out"] == len(held_out) > 0
    assert recorded["training"] == 40 - len(held_out)
    # 8,000 MNIST images: each training item REPEAT times (well under the cap).
    assert recorded["repeat"] == REPEAT
    assert recorded["training_copies"] == recorded["training"] * REPEAT
    # The model is measured on the held-out boxes, as is the bundled model.
    assert recorded["held_out_accuracy"] == recorded["held_out_correct"] / len(held_out)
    bundled = recorded["bundled_model"]
    bundled_metadata = onnx.load(REPO_ROOT / "functions" / "model" / "model.onnx").metadata_props
    assert bundled["version"] == {p.key: p.value for p in bundled_metadata}["version"]
    assert bundled["held_out_accuracy"] == bundled["held_out_correct"] / len(held_out)
    print(
        f"\nheld-out boxes labelled 7: this model {recorded['held_out_correct']}/{len(held_out)}, "
        f"the bundled model {bundled['held_out_correct']}/{len(held_out)}"
    )
    # What the boxes taught it: MNIST has no 7 like them, so only training on them explains it.
    assert recorded["held_out_accuracy"] > bundled["held_out_accuracy"]
    # The training data's hash covers the feedback, and the card says all of it.
    assert saved["metadata"]["training_data_sha256"] != saved["data"]["sha256"]
    card = (out / "MODEL_CARD.md").read_text()
    assert f"(feedback, {folder}): 40 used" in card
    assert "3 duplicates and 2 ambiguous" in card
    assert f"right on {recorded['held_out_correct']} of {len(held_out)}" in card


def test_verification_fails_loudly_on_a_different_model(tiny_run, tmp_path):
    """A model checked against an ONNX file of another network must be refused."""
    out, _ = tiny_run
    from conversion.network import build_model  # noqa: PLC0415 - keeps TensorFlow out of collection

    recipe = RECIPES[DEFAULT_RECIPE]
    untrained = build_model(recipe.network, not_digit=recipe.not_digit)
    images = np.load(mnist_path())["x_test"][:500]
    with pytest.raises(VerificationError, match="ONNX disagrees with Keras"):
        verify_against_keras(untrained, out / "model.onnx", images)
    ten_classes = build_model(recipe.network)  # no eleventh class: not even the same outputs
    with pytest.raises(VerificationError, match="ONNX disagrees with Keras: one has"):
        verify_against_keras(ten_classes, out / "model.onnx", images)
