"""The generated drawings that are not digits (conversion/negatives.py): seeded, prepared as the
service prepares a drawing, the held-out generator sharing nothing with the training one, and the
gate set's negatives made by the held-out generator."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from conversion.gate_set import NEGATIVES
from conversion.negatives import (
    DIGIT_LIKE,
    GATE_SEED,
    HELD_OUT_FONTS,
    HELD_OUT_SEED,
    HELD_OUT_SHAPES,
    HELD_OUT_SYMBOLS,
    LETTERS,
    TRAINING_FONTS,
    TRAINING_SEED,
    TRAINING_SHAPES,
    TRAINING_SYMBOLS,
    held_out_negatives,
    training_negatives,
)
from functions.model_contract import digit_rule, open_session, run_inference
from functions.serving.provider import BUNDLED_MODEL

GATE_SET = BUNDLED_MODEL.parent / "gate_set.npz"


def test_a_seed_gives_the_same_drawings_and_another_seed_others():
    first = training_negatives(40)
    assert first.shape == (40, 28, 28)
    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, training_negatives(40))
    assert not np.array_equal(first, training_negatives(40, seed=TRAINING_SEED + 1))


def test_each_drawing_is_prepared_as_the_service_prepares_one():
    """Ink inside the field, its centre of mass about the middle, as functions/preprocessing
    leaves every drawing."""
    for images in (training_negatives(60), held_out_negatives(60)):
        for image in images:
            mass = image.astype(np.float64)
            assert mass.sum() > 0
            rows, columns = np.indices(mass.shape)
            centre = ((rows * mass).sum() / mass.sum(), (columns * mass).sum() / mass.sum())
            assert abs(centre[0] - 14) <= 1.5
            assert abs(centre[1] - 14) <= 1.5


def test_the_held_out_generator_shares_no_font_shape_or_seed_with_training():
    assert not set(HELD_OUT_FONTS) & set(TRAINING_FONTS)
    assert not set(HELD_OUT_SHAPES) & set(TRAINING_SHAPES)
    assert len({TRAINING_SEED, HELD_OUT_SEED, GATE_SEED}) == 3
    assert not np.array_equal(training_negatives(20, seed=1), held_out_negatives(20, seed=1))


def test_no_glyph_drawn_looks_like_a_digit():
    for glyphs in (LETTERS, TRAINING_SYMBOLS, HELD_OUT_SYMBOLS):
        assert not set(glyphs) & DIGIT_LIKE
    assert set("0123456789OoIl|ZzSsBbGgqT") <= DIGIT_LIKE


def test_the_gate_sets_negatives_are_the_held_out_generators_with_their_own_seed():
    with np.load(GATE_SET) as archive:
        assert {"images", "labels", "test_indices", "negatives"} <= set(archive.files)
        negatives = archive["negatives"]
    assert negatives.shape == (NEGATIVES, 28, 28)
    assert negatives.dtype == np.uint8
    np.testing.assert_array_equal(negatives, held_out_negatives(NEGATIVES, seed=GATE_SEED))


def test_the_bundled_model_passes_what_the_gate_asks_of_its_rule():
    """At most 1% of the gate set's digits flagged, and some of its negatives."""
    model = onnx.load(BUNDLED_MODEL)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    rule = digit_rule(metadata, [value.name for value in model.graph.output])
    if rule is None:
        pytest.skip("the bundled model declares no rule")
    session = open_session(BUNDLED_MODEL.read_bytes())
    with np.load(GATE_SET) as archive:
        digits = archive["images"].astype(np.float32)[..., np.newaxis]
        negatives = archive["negatives"].astype(np.float32)[..., np.newaxis]
    digits_flagged = ~rule.is_digit(*run_inference(session, digits))
    negatives_flagged = ~rule.is_digit(*run_inference(session, negatives))
    assert digits_flagged.mean() <= 0.01
    assert negatives_flagged.any()
