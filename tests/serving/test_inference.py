"""The inference core (functions/serving/inference.py): images in, `Predictions` out, the same for
every protocol; a batch that is not what a model takes is a bug, never a run of the model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from functions.model_contract import MAX_BATCH, ModelOutputError
from functions.serving.inference import Predictions, infer
from functions.serving.loaded_model import load_model
from functions.serving.strikes import Strikes
from tests import bad_models


def test_predictions_are_the_models_digits_probabilities_and_version(bundled, mnist) -> None:
    images = mnist["x_test"][:5].astype(np.float32).reshape(-1, 28, 28, 1)
    predictions = infer(bundled, images)
    assert isinstance(predictions, Predictions)
    assert predictions.version == bundled.version
    assert predictions.probabilities.shape == (5, 10)
    assert predictions.digits.tolist() == mnist["y_test"][:5].tolist()
    np.testing.assert_array_equal(predictions.digits, predictions.probabilities.argmax(axis=1))


def test_whether_each_image_is_a_digit_is_the_models_rule_and_never_a_blank(bundled, mnist) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (1, 28, 28, 1)).astype(np.float32)
    blank = np.zeros((1, 28, 28, 1), dtype=np.float32)
    digit = mnist["x_test"][:1].astype(np.float32).reshape(1, 28, 28, 1)
    images = np.concatenate([digit, noise, blank])
    assert infer(bundled, images).is_digit.tolist() == [True, False, False]
    # A model that declares no rule (made before it) takes anything with ink for a digit.
    no_rule = load_model(bad_models.with_digit_rule_bytes("old", None), source="storage")
    assert no_rule.digit_rule is None
    assert infer(no_rule, images).is_digit.tolist() == [True, True, False]


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((0, 28, 28, 1), dtype=np.float32),
        np.zeros((MAX_BATCH + 1, 28, 28, 1), dtype=np.float32),
        np.zeros((1, 28, 28), dtype=np.float32),
        np.zeros((1, 28, 28, 1), dtype=np.float64),
        [[0.0] * 784],
    ],
    ids=["no image", "over the largest batch", "no channel", "float64", "a list"],
)
def test_a_batch_a_model_does_not_take_never_reaches_it(bundled, images) -> None:
    strikes = bundled.strikes.total
    with pytest.raises(ValueError, match="float32"):
        infer(bundled, images)
    assert bundled.strikes.total == strikes  # a codec's bug is no failure of the model


def test_the_models_failures_come_through_as_they_are(bundled) -> None:
    class Logits:
        """A session whose one output holds logits, not probabilities."""

        def get_outputs(self):
            return bundled.session.get_outputs()[:1]

        def run(self, *args, **kwargs):
            return [np.full((1, 10), 3.0, dtype=np.float32)]

    liar = dataclasses.replace(bundled, session=Logits(), strikes=Strikes())
    with pytest.raises(ModelOutputError):
        infer(liar, np.zeros((1, 28, 28, 1), dtype=np.float32))
    assert liar.strikes.total == 1
