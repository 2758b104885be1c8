"""The Keras network, and the augmentation used while training it."""

from __future__ import annotations

import keras
from keras import layers

from functions.model_contract import INPUT_NAME, INPUT_SHAPE, NUM_CLASSES, OUTPUT_NAME


def build_model(*, dropout: float = 0.25) -> keras.Model:
    """A small CNN sized for sub-0.2 ms single-image inference on one CPU thread.

    It takes raw 0..255 ink values: the scaling lives in the graph, so every client (and the
    ONNX file) sees the same input contract.
    """
    pixels = keras.Input(shape=INPUT_SHAPE, name=INPUT_NAME)
    x = layers.Rescaling(1.0 / 255.0, name="scale_to_unit")(pixels)
    for index, (filters, kernel) in enumerate(((32, 5), (64, 3))):
        x = _conv_block(x, filters, kernel, name=f"block{index + 1}")
        x = layers.MaxPooling2D(name=f"block{index + 1}_pool")(x)
        x = layers.Dropout(dropout / 2, name=f"block{index + 1}_dropout")(x)
    # "valid" shrinks 7x7 to 5x5: wider features for the same dense layer size and file size.
    x = _conv_block(x, 96, 3, padding="valid", name="block3")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    x = layers.Dropout(dropout, name="dense_dropout")(x)
    probabilities = layers.Dense(NUM_CLASSES, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(pixels, probabilities, name="mnist_cnn")


def _conv_block(x, filters: int, kernel: int, *, name: str, padding: str = "same"):
    # No bias: batch normalisation right after supplies the shift, and the converter folds it in.
    x = layers.Conv2D(filters, kernel, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_augmentation(*, seed: int) -> keras.Sequential:
    """Small rotations, shifts and zooms, as handwriting varies; never flips (a flipped 2 is no
    digit). Empty space is filled with background (0)."""
    return keras.Sequential(
        [
            layers.RandomRotation(10 / 360, fill_mode="constant", fill_value=0.0, seed=seed),
            layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=0.0, seed=seed + 1),
            layers.RandomZoom(0.1, fill_mode="constant", fill_value=0.0, seed=seed + 2),
        ],
        name="augmentation",
    )
