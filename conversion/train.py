"""Training the Keras model: a seeded, validated run of one recipe that keeps the best epoch's
weights (of the weights' moving average, where the recipe keeps one)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from conversion.negatives import training_negatives
from conversion.network import (
    DEFAULT_DROPOUT,
    NOT_DIGIT_CLASS,
    Augmentation,
    build_augmentation,
    build_model,
)
from conversion.pen import pen_digits
from functions.model_contract import NUM_CLASSES

DIGIT_SAFE = Augmentation()

log = logging.getLogger("conversion.train")


@dataclass(frozen=True)
class Recipe:
    """A network and how to train it; the measured trade-offs are in docs/model_frontier.md."""

    network: str
    epochs: int
    learning_rate: float = 2e-3
    augmentation: Augmentation = DIGIT_SAFE
    # Decay of an exponential moving average of all weights, updated every step; validated and
    # kept in place of the raw weights. None: no average.
    weight_average: float | None = None
    label_smoothing: float = 0.0
    dropout: float = DEFAULT_DROPOUT
    # False: train on all 60,000 training images for the recipe's epochs and ship the last
    # epoch's weights, the number of epochs having been chosen on a held-out run of the same
    # recipe (see docs/model_frontier.md).
    hold_out: bool = True
    # Negatives from conversion/negatives.py's training generator: with any, the network has an
    # eleventh class, "not a digit", trained on them (and on people's "not a digit" corrections).
    negatives: int = 0
    # MNIST training digits redrawn with the site's pen (conversion/pen.py) added as digits: the
    # site's uniform stroke must never read as "not a digit".
    pen_digits: int = 0
    # The model's is_digit rule: a digit when not_digit is under this (models with negatives).
    not_digit_threshold: float = 0.7

    @property
    def not_digit(self) -> bool:
        return self.negatives > 0

    def describe(self, learning_rate: float) -> str:
        parts = [f"Adam with cosine decay from {learning_rate}"]
        if self.weight_average is not None:
            checked = "validated each epoch and shipped" if self.hold_out else "shipped"
            parts.append(
                f"the exponential moving average of the weights (decay {self.weight_average}) "
                f"is {checked}"
            )
        if self.label_smoothing:
            parts.append(f"label smoothing {self.label_smoothing}")
        if self.dropout != DEFAULT_DROPOUT:
            parts.append(f"dropout {self.dropout:g} (dense), {self.dropout / 2:g} (each pooling)")
        if self.not_digit:
            parts.append(
                f"an eleventh class, not a digit, trained on {self.negatives} generated "
                f"negatives; {self.pen_digits} MNIST training digits redrawn with the site's pen"
            )

        return "; ".join(parts)


RECIPES: dict[str, Recipe] = {
    # mnist-cnn-1.1.0's recipe (99.53% on MNIST test).
    "cnn-1.1": Recipe(network="cnn-32-64-96", epochs=30),
    "cnn-1.1-ema": Recipe(network="cnn-32-64-96", epochs=18, weight_average=0.999),
    "wide-ema": Recipe(network="cnn-24-64-112", epochs=18, weight_average=0.999),
    "deep-ema": Recipe(network="cnn-24-48-96-64", epochs=18, weight_average=0.999),
    "deep16-ema": Recipe(network="cnn-16-48-96-64", epochs=18, weight_average=0.999),
    "deep16-ema-long": Recipe(network="cnn-16-48-96-64", epochs=30, weight_average=0.999),
    "deep16w-ema-40": Recipe(network="cnn-16-48-128-64", epochs=40, weight_average=0.999),
    # The same on all 60,000 images: its held-out run plateaued from epoch 26 to 40.
    "deep16w-ema-40-all": Recipe(
        network="cnn-16-48-128-64", epochs=40, weight_average=0.999, hold_out=False
    ),
    # More dropout: no gain on the held-out images (docs/model_frontier.md).
    "deep16w-drop40-ema-40": Recipe(
        network="cnn-16-48-128-64", epochs=40, weight_average=0.999, dropout=0.4
    ),
    # A 5x5 first convolution: faster to learn, no better at the end (docs/model_frontier.md).
    "deep16w5-ema-40": Recipe(network="cnn-16k5-48-128-64", epochs=40, weight_average=0.999),
    "wide-ema-smooth": Recipe(
        network="cnn-24-64-112",
        epochs=18,
        weight_average=0.999,
        label_smoothing=0.1,
        augmentation=Augmentation(rotation_degrees=12, shift=0.12, zoom=0.12),
    ),
    # mnist-cnn-1.3.0's: deep16w-ema-40-all with an eleventh class, "not a digit" (issue #25).
    "deep16w-nd-ema-40-all": Recipe(
        network="cnn-16-48-128-64",
        epochs=40,
        weight_average=0.999,
        hold_out=False,
        negatives=9000,
        pen_digits=4000,
    ),
    # The same with a hold-out: how the threshold and the figures were chosen.
    "deep16w-nd-ema-40": Recipe(
        network="cnn-16-48-128-64",
        epochs=40,
        weight_average=0.999,
        negatives=9000,
        pen_digits=4000,
    ),
}
DEFAULT_RECIPE = "deep16w-nd-ema-40-all"


@dataclass(frozen=True)
class TrainingSettings:
    recipe: str = DEFAULT_RECIPE
    epochs: int = RECIPES[DEFAULT_RECIPE].epochs
    batch_size: int = 128
    learning_rate: float = RECIPES[DEFAULT_RECIPE].learning_rate
    validation_size: int = 5000
    seed: int = 42
    augment: bool = True
    limit: int | None = None  # train on the first `limit` images only (quick runs and tests)

    @classmethod
    def for_recipe(cls, name: str, **overrides) -> TrainingSettings:
        """The recipe's own epochs and learning rate unless `overrides` says otherwise."""
        recipe = RECIPES[name]
        chosen = {"epochs": recipe.epochs, "learning_rate": recipe.learning_rate}
        chosen.update({key: value for key, value in overrides.items() if value is not None})
        return cls(recipe=name, **chosen)


@dataclass
class TrainingResult:
    model: keras.Model
    best_epoch: int
    best_validation_accuracy: float | None  # None: trained without a hold-out
    history: dict[str, list[float]] = field(default_factory=dict)
    # What was added to MNIST's images for the eleventh class: generated negatives, pen digits.
    additions: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Additions:
    images: np.ndarray  # uint8, as MNIST's
    labels: np.ndarray
    negatives: int
    pen_digits: int


def not_digit_additions(
    x_fit: np.ndarray, y_fit: np.ndarray, recipe: Recipe, seed: int
) -> Additions | None:
    """The recipe's generated negatives (label NOT_DIGIT_CLASS) and pen-drawn digits (drawn from
    the images trained on, never the validation ones), in proportion to the images trained on
    when a run trains on fewer than MNIST's 60,000 (quick runs, tests). None: a ten-class
    recipe."""
    if not recipe.not_digit:
        return None
    share = min(1.0, len(x_fit) / 60_000)
    negatives = max(1, round(recipe.negatives * share))
    pen_count = round(recipe.pen_digits * share)
    images = [training_negatives(negatives)]
    labels = [np.full(negatives, NOT_DIGIT_CLASS, dtype=np.uint8)]
    if pen_count:
        pen_images, pen_labels = pen_digits(x_fit, y_fit, pen_count, seed=seed)
        images.append(np.clip(np.floor(pen_images + 0.5), 0, 255).astype(np.uint8))
        labels.append(pen_labels.astype(np.uint8))
    log.info("added %d generated negatives and %d pen-drawn digits", negatives, pen_count)
    return Additions(np.concatenate(images), np.concatenate(labels), negatives, pen_count)


def train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    settings: TrainingSettings,
    extra: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainingResult:
    """Train on MNIST's training images; the validation split is carved from them, so the test
    set stays untouched until the final evaluation. `extra` (images and labels, as MNIST's) is
    added to the images trained on after that split, never to the validation images: people's
    corrections (conversion/feedback.py), already repeated as often as they are to be seen."""
    recipe = RECIPES[settings.recipe]
    keras.utils.set_random_seed(settings.seed)
    # Without it, oneDNN's and tf.data's thread scheduling make two runs with one seed differ
    # (measured: 99.50% and 99.47% test accuracy); with it, the same seed gives the same weights.
    tf.config.experimental.enable_op_determinism()
    x_fit, y_fit, x_val, y_val = split_validation(x_train, y_train, settings, recipe.hold_out)
    additions = not_digit_additions(x_fit, y_fit, recipe, settings.seed)
    counts = {"negatives": 0, "pen_digits": 0}
    if additions is not None:
        counts = {"negatives": additions.negatives, "pen_digits": additions.pen_digits}
        x_fit = np.concatenate([x_fit, additions.images])
        y_fit = np.concatenate([y_fit, additions.labels])
    if extra is not None and len(extra[0]):
        x_fit = np.concatenate([x_fit, extra[0].astype(x_fit.dtype)])
        y_fit = np.concatenate([y_fit, extra[1].astype(y_fit.dtype)])

    model = build_model(recipe.network, dropout=recipe.dropout, not_digit=recipe.not_digit)
    steps_per_epoch = math.ceil(len(x_fit) / settings.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=settings.learning_rate,
        decay_steps=steps_per_epoch * settings.epochs,
        alpha=0.01,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=_loss(recipe),
        metrics=["accuracy"],
    )
    best = KeepBestWeights(_as_model_input(x_val), y_val, weight_average=recipe.weight_average)
    history = model.fit(
        _training_dataset(x_fit, y_fit, settings, recipe),
        epochs=settings.epochs,
        callbacks=[best],
        shuffle=False,  # the dataset reshuffles itself each epoch
        verbose=2,  # one line per epoch
    )
    best.restore(model)
    return TrainingResult(
        model=model,
        additions=counts,
        best_epoch=best.best_epoch + 1,
        best_validation_accuracy=best.best_accuracy if recipe.hold_out else None,
        history={
            key: [float(value) for value in values] for key, values in history.history.items()
        },
    )


def _loss(recipe: Recipe) -> keras.losses.Loss | str:
    if recipe.label_smoothing:
        return keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
    # As mnist-cnn-1.1.0 was trained, so that its recipe still rebuilds it weight for weight.
    return "sparse_categorical_crossentropy"


def split_validation(
    x: np.ndarray, y: np.ndarray, settings: TrainingSettings, hold_out: bool = True
):
    """A seeded, shuffled hold-out of `validation_size` training images (none without
    `hold_out`)."""
    order = np.random.default_rng(settings.seed).permutation(len(x))
    if settings.limit is not None:
        order = order[: settings.limit]
    validation_size = min(settings.validation_size, len(order) // 5) if hold_out else 0
    val, fit = order[:validation_size], order[validation_size:]
    return x[fit], y[fit], x[val], y[val]


def _as_model_input(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32)[..., np.newaxis]


def _training_dataset(
    x: np.ndarray, y: np.ndarray, settings: TrainingSettings, recipe: Recipe
) -> tf.data.Dataset:
    if recipe.label_smoothing:  # it needs one-hot targets
        classes = NUM_CLASSES + 1 if recipe.not_digit else NUM_CLASSES
        targets = keras.utils.to_categorical(y, classes).astype(np.float32)
    else:
        targets = y.astype(np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((_as_model_input(x), targets))
    dataset = dataset.shuffle(len(x), seed=settings.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(settings.batch_size)
    if settings.augment:
        augmentation = build_augmentation(recipe.augmentation, seed=settings.seed)
        dataset = dataset.map(
            lambda images, labels: (augmentation(images, training=True), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


class KeepBestWeights(keras.callbacks.Callback):
    """Validates at the end of each epoch and remembers the weights of the best one.

    With `weight_average`, it also keeps an exponential moving average of all weights (batch
    normalisation's statistics too), updated after every step; that average is what it validates
    and keeps, as it generalises a little better than the last step's weights.
    """

    def __init__(
        self, x_val: np.ndarray, y_val: np.ndarray, *, weight_average: float | None = None
    ) -> None:
        super().__init__()
        self.x_val, self.y_val = x_val, y_val
        self.weight_average = weight_average
        self.best_accuracy = -1.0
        self.best_epoch = -1
        self._weights: list[np.ndarray] | None = None
        self._average: list[np.ndarray] | None = None
        self._steps = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.weight_average is None:
            return
        current = self.model.get_weights()
        self._steps += 1
        if self._average is None:
            self._average = [weights.astype(np.float64) for weights in current]
            return
        # The usual warm-up: early steps weigh more, so the start's random weights fade fast.
        decay = min(self.weight_average, (1 + self._steps) / (10 + self._steps))
        for average, weights in zip(self._average, current, strict=True):
            np.multiply(average, decay, out=average)
            np.add(average, (1 - decay) * weights, out=average)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        trained = self.model.get_weights()
        candidate = trained
        if self._average is not None:
            candidate = [
                average.astype(weights.dtype)
                for average, weights in zip(self._average, trained, strict=True)
            ]
            self.model.set_weights(candidate)
        accuracy = self._validation_accuracy() if len(self.y_val) else None
        if self._average is not None:
            self.model.set_weights(trained)
        if accuracy is None:  # no hold-out: the last epoch is the one shipped
            self.best_epoch, self._weights = epoch, candidate
            return
        if logs is not None:
            logs["val_accuracy"] = accuracy  # recorded in the history, as fit's own would be
        log.info("epoch %d: validation accuracy %.4f", epoch + 1, accuracy)
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch = accuracy, epoch
            self._weights = candidate

    def _validation_accuracy(self) -> float:
        probabilities = self.model.predict(self.x_val, batch_size=500, verbose=0)
        return float(np.mean(probabilities.argmax(axis=1) == self.y_val))

    def restore(self, model: keras.Model) -> None:
        if self._weights is not None:
            model.set_weights(self._weights)
