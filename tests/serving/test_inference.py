"""The inference core (functions/serving/inference.py): images in, `Predictions` out, the same for
every protocol; a batch that is not what a model takes is a bug, never a run of the model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from functions.model_contract import MAX_BATCH, ModelOutputError
from functions.serving.inference import Predictions, infer
from functions.serving.strikes import Strikes


def test_predictions_are_the_models_digits_probabilities_and_version(bundled, mnist) -> None:
    images = mnist["x_test"][:5].astype(np.float32).reshape(-1, 28, 28, 1)
    predictions = infer(bundled, images)
    assert isinstance(predictions, Predictions)
    assert predictions.version == bundled.version
    assert predictions.probabilities.shape == (5, 10)
    assert predictions.digits.tolist() == mnist["y_test"][:5].tolist()
    np.testing.assert_array_equal(predictions.digits, predictions.probabilities.argmax(axis=1))


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
        def run(self, *args, **kwargs):
            return [np.full((1, 10), 3.0, dtype=np.float32)]

    liar = dataclasses.replace(bundled, session=Logits(), strikes=Strikes())
    with pytest.raises(ModelOutputError):
        infer(liar, np.zeros((1, 28, 28, 1), dtype=np.float32))
    assert liar.strikes.total == 1
