"""Recipes: the network and training options `make train` chooses between, and the weight
average that most of them ship."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

from conversion.network import NETWORKS
from conversion.train import DEFAULT_RECIPE, RECIPES, TrainingSettings


def test_every_recipe_names_a_known_network():
    assert DEFAULT_RECIPE in RECIPES
    for name, recipe in RECIPES.items():
        assert recipe.network in NETWORKS, name


def test_settings_take_the_recipes_epochs_unless_overridden():
    assert TrainingSettings().recipe == DEFAULT_RECIPE
    assert TrainingSettings().epochs == RECIPES[DEFAULT_RECIPE].epochs
    assert TrainingSettings.for_recipe("cnn-1.1").epochs == 30
    assert TrainingSettings.for_recipe("cnn-1.1", epochs=2, learning_rate=None).epochs == 2
    with pytest.raises(KeyError):
        TrainingSettings.for_recipe("no-such-recipe")


def test_command_line_chooses_the_recipe():
    from conversion.steps.train import add_training_arguments, training_settings  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    old = training_settings(parser.parse_args(["--recipe", "cnn-1.1"]))
    assert (old.recipe, old.epochs, old.learning_rate) == ("cnn-1.1", 30, 2e-3)
    short = training_settings(parser.parse_args(["--epochs", "3", "--seed", "7"]))
    assert (short.recipe, short.epochs, short.seed) == (DEFAULT_RECIPE, 3, 7)
    with pytest.raises(SystemExit):
        parser.parse_args(["--recipe", "no-such-recipe"])


def test_weight_average_is_validated_and_kept_but_training_goes_on_from_the_raw_weights():
    import keras  # noqa: PLC0415 - keeps TensorFlow out of collection

    from conversion.train import KeepBestWeights  # noqa: PLC0415

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    # Column 0 wins when x[0] > x[1]: these weights read every validation image right.
    right = [np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32), np.zeros(2, np.float32)]
    wrong = [-right[0], right[1]]
    x_val = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]], np.float32)
    y_val = np.array([0, 1, 0, 1])
    callback = KeepBestWeights(x_val, y_val, weight_average=0.5)
    callback.set_model(model)

    model.set_weights(right)
    callback.on_train_batch_end(0)  # the average starts at the first step's weights
    model.set_weights(wrong)
    callback.on_train_batch_end(1)  # warm-up decay (1 + 2) / (10 + 2): mostly the new weights
    logs: dict = {}
    callback.on_epoch_end(0, logs)

    assert logs["val_accuracy"] == 0.0  # 0.25 right + 0.75 wrong reads everything wrong
    for weights, raw in zip(model.get_weights(), wrong, strict=True):
        np.testing.assert_array_equal(weights, raw)  # training continues from its own weights
    kept_from_before = 1.0
    for step in range(3, 8):
        model.set_weights(right)
        callback.on_train_batch_end(step)
        kept_from_before *= (1 + step) / (10 + step)
    callback.on_epoch_end(1, logs)
    assert logs["val_accuracy"] == 1.0
    assert (callback.best_epoch, callback.best_accuracy) == (1, 1.0)
    model.set_weights(wrong)
    callback.restore(model)
    # The best epoch's average (-0.5 right, then five steps towards right), not the last weights.
    expected = right[0] + (-0.5 * right[0] - right[0]) * kept_from_before
    np.testing.assert_allclose(model.get_weights()[0], expected, rtol=1e-6)
    assert not np.allclose(model.get_weights()[0], right[0])


def test_without_a_hold_out_the_last_epochs_average_is_kept_and_training_goes_on():
    import keras  # noqa: PLC0415 - keeps TensorFlow out of collection

    from conversion.train import KeepBestWeights, split_validation  # noqa: PLC0415

    x, y = np.zeros((100, 2), np.float32), np.arange(100) % 2
    x_fit, _, x_val, y_val = split_validation(x, y, TrainingSettings(), hold_out=False)
    assert (len(x_fit), len(x_val), len(y_val)) == (100, 0, 0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    first = [np.ones((2, 2), np.float32), np.zeros(2, np.float32)]
    callback = KeepBestWeights(x_val, y_val, weight_average=0.5)
    callback.set_model(model)
    model.set_weights(first)
    callback.on_train_batch_end(0)
    callback.on_epoch_end(0, {})
    later = [2 * first[0], first[1]]
    model.set_weights(later)
    callback.on_epoch_end(1, {})
    np.testing.assert_array_equal(model.get_weights()[0], later[0])  # goes on from its own
    callback.restore(model)
    assert callback.best_epoch == 1
    np.testing.assert_array_equal(model.get_weights()[0], first[0])  # the average, not `later`


@pytest.mark.slow
def test_candidate_networks_cost_about_what_mnist_cnn_1_1_0_costs(tmp_path):
    """The serving targets rest on the bundled model's speed: no recipe's network may need
    more than a tenth more multiply-adds per image, nor a larger file, than mnist-cnn-1.1.0's.
    Multiply-adds are only a guide (onnxruntime convolves in blocks of 16 channels):
    `cnn-16-48-128-64`, 5% more, measured as fast both ways; whether a network is as fast is
    measured by benchmarks.model_frontier."""
    from benchmarks.model_frontier import multiply_adds  # noqa: PLC0415
    from conversion.convert import convert_to_onnx  # noqa: PLC0415
    from conversion.network import build_model  # noqa: PLC0415

    costs = {}
    for name in NETWORKS:
        path = tmp_path / f"{name}.onnx"
        convert_to_onnx(build_model(name), path)
        costs[name] = (multiply_adds(path), path.stat().st_size)
    old_multiply_adds, _ = costs[RECIPES["cnn-1.1"].network]
    assert 5_900_000 < old_multiply_adds < 6_000_000  # docs/model_frontier.md: 5.93 M
    for name, (count, size) in costs.items():
        assert count <= 1.1 * old_multiply_adds, name
        assert size <= 2_000_000, name


def test_the_recipes_dropout_is_the_models(mnist):
    from conversion.train import train  # noqa: PLC0415 - keeps TensorFlow out of collection

    settings = TrainingSettings.for_recipe("deep16w-drop40-ema-40", epochs=1)
    settings = dataclasses.replace(settings, batch_size=64, limit=256, augment=False)
    model = train(mnist["x_train"], mnist["y_train"], settings).model
    rates = {layer.name: layer.rate for layer in model.layers if hasattr(layer, "rate")}
    assert rates == {"block1_dropout": 0.2, "block2_dropout": 0.2, "dense_dropout": 0.4}
