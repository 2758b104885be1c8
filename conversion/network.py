"""The Keras networks the recipes choose from, and the augmentation used while training them."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from functions.model_contract import INPUT_NAME, INPUT_SHAPE, NUM_CLASSES, OUTPUT_NAME


@dataclass(frozen=True)
class Conv:
    filters: int
    kernel: int
    pool: bool = False  # 2x2 max pooling (and dropout) after it
    valid: bool = False  # no padding: a 3x3 kernel shrinks 7x7 to 5x5


@dataclass(frozen=True)
class ConvShape:
    """Convolution blocks (each conv + batch normalisation + ReLU), then a dense layer and the
    ten-way softmax."""

    convs: tuple[Conv, ...]
    dense: int

    def describe(self) -> str:
        parts = []
        for conv in self.convs:
            parts.append(
                f"conv {conv.kernel}x{conv.kernel}x{conv.filters}"
                + (" valid" if conv.valid else "")
            )
            if conv.pool:
                parts.append("pool")
        return (
            ", ".join(parts) + " (each with batch normalisation, folded into the convolutions in "
            f"ONNX), dense {self.dense}, dense 10; dropout while training"
        )


NETWORKS: dict[str, ConvShape] = {
    # mnist-cnn-1.1.0's network: 5.93 M multiply-adds per image.
    "cnn-32-64-96": ConvShape(
        (Conv(32, 5, pool=True), Conv(64, 3, pool=True), Conv(96, 3, valid=True)), dense=128
    ),
    # Fewer, smaller filters up front where every pixel costs, more at 5x5 where little does:
    # 4.85 M multiply-adds per image.
    "cnn-24-64-112": ConvShape(
        (Conv(24, 3, pool=True), Conv(64, 3, pool=True), Conv(112, 3, valid=True)), dense=128
    ),
    # One convolution more at 7x7, paid for by narrower ones before it: 5.81 M multiply-adds.
    "cnn-24-48-96-64": ConvShape(
        (Conv(24, 3, pool=True), Conv(48, 3, pool=True), Conv(96, 3), Conv(64, 3, valid=True)),
        dense=128,
    ),
    # The same with 16 filters first: onnxruntime's CPU convolutions work on blocks of 16
    # channels (AVX-512), so 24 costs as much as 32. 5.08 M multiply-adds.
    "cnn-16-48-96-64": ConvShape(
        (Conv(16, 3, pool=True), Conv(48, 3, pool=True), Conv(96, 3), Conv(64, 3, valid=True)),
        dense=128,
    ),
    # Wider at 7x7, where a filter costs a sixteenth of one at 28x28: 6.2 M multiply-adds.
    "cnn-16-48-128-64": ConvShape(
        (Conv(16, 3, pool=True), Conv(48, 3, pool=True), Conv(128, 3), Conv(64, 3, valid=True)),
        dense=128,
    ),
    # The same with a 5x5 first convolution: it sees whole strokes at full resolution, where its
    # one input channel keeps it cheap. 6.4 M multiply-adds.
    "cnn-16k5-48-128-64": ConvShape(
        (Conv(16, 5, pool=True), Conv(48, 3, pool=True), Conv(128, 3), Conv(64, 3, valid=True)),
        dense=128,
    ),
}
DEFAULT_NETWORK = "cnn-32-64-96"
DEFAULT_DROPOUT = 0.25  # after the dense layer; half of it after each pooling


LOGITS_LAYER = "logits"
SCORES_NAME = "scores"
NOT_DIGIT_CLASS = NUM_CLASSES  # the eleventh class of a model that knows what is not a digit


def build_model(
    network: str = DEFAULT_NETWORK, *, dropout: float = DEFAULT_DROPOUT, not_digit: bool = False
) -> keras.Model:
    """A small CNN sized for about 0.2 ms single-image inference on one CPU thread.

    It takes raw 0..255 ink values: the scaling lives in the graph, so every client (and the
    ONNX file) sees the same input contract. With `not_digit`, the last layer has an eleventh
    class, "not a digit" (NOT_DIGIT_CLASS): its logits (layer LOGITS_LAYER) then an eleven-way
    softmax; the converter makes the contract's two outputs of those logits.
    """
    shape = NETWORKS[network]
    pixels = keras.Input(shape=INPUT_SHAPE, name=INPUT_NAME)
    x = layers.Rescaling(1.0 / 255.0, name="scale_to_unit")(pixels)
    for index, conv in enumerate(shape.convs, start=1):
        padding = "valid" if conv.valid else "same"
        x = _conv_block(x, conv.filters, conv.kernel, padding=padding, name=f"block{index}")
        if conv.pool:
            x = layers.MaxPooling2D(name=f"block{index}_pool")(x)
            x = layers.Dropout(dropout / 2, name=f"block{index}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(shape.dense, activation="relu", name="dense")(x)
    x = layers.Dropout(dropout, name="dense_dropout")(x)
    if not_digit:
        logits = layers.Dense(NUM_CLASSES + 1, name=LOGITS_LAYER)(x)
        scores = layers.Softmax(name=SCORES_NAME)(logits)
        return keras.Model(pixels, scores, name="mnist_cnn_not_digit")
    probabilities = layers.Dense(NUM_CLASSES, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(pixels, probabilities, name="mnist_cnn")


def is_not_digit_model(model: keras.Model) -> bool:
    """Whether `model` has the eleventh class (built with `not_digit`)."""
    return model.outputs[0].shape[-1] == NUM_CLASSES + 1


def _conv_block(x, filters: int, kernel: int, *, name: str, padding: str = "same"):
    # No bias: batch normalisation right after supplies the shift, and the converter folds it in.
    x = layers.Conv2D(filters, kernel, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


@dataclass(frozen=True)
class Augmentation:
    """Digit-safe distortions: small rotations, shifts and zooms, as handwriting varies; never
    flips (a flipped 2 is no digit)."""

    rotation_degrees: float = 10.0
    shift: float = 0.1  # fraction of the image, each axis
    zoom: float = 0.1

    def describe(self) -> str:
        return (
            f"rotations up to {self.rotation_degrees:g} degrees, shifts up to {self.shift:.0%}, "
            f"zoom up to {self.zoom:.0%}, no flips"
        )


def build_augmentation(augmentation: Augmentation, *, seed: int) -> keras.Sequential:
    """Empty space is filled with background (0)."""
    fill: dict[str, object] = {"fill_mode": "constant", "fill_value": 0.0}
    shift = augmentation.shift
    return keras.Sequential(
        [
            layers.RandomRotation(augmentation.rotation_degrees / 360, seed=seed, **fill),
            layers.RandomTranslation(shift, shift, seed=seed + 1, **fill),
            layers.RandomZoom(augmentation.zoom, seed=seed + 2, **fill),
        ],
        name="augmentation",
    )
