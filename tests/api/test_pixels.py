"""Pixels as JSON carries them (functions/api/pixels.py), shared by the predict, V2 and feedback
codecs: every value a finite number 0..255, and an error that names where one is not."""

from __future__ import annotations

import numpy as np
import pytest

from functions.api.pixels import (
    checked_pixels,
    image_pixels,
    json_pixels,
    no_booleans,
    uint8_values,
)
from functions.api.request_errors import InvalidInput


def test_booleans_are_found_up_to_the_end_given() -> None:
    assert no_booleans(b'{"pixels": [0, 1]}')
    assert not no_booleans(b'{"pixels": [true]}')
    assert not no_booleans(b'{"x": false}')
    assert no_booleans(b'{"pixels": [0]} true', end=15)  # what follows the JSON header


def test_whole_numbers_0_to_255_only_become_uint8() -> None:
    assert uint8_values([0, 255, 7]).tolist() == [0, 255, 7]
    for values in ([256], [-1], [1.0], ["1"], [None]):
        assert uint8_values(values) is None


@pytest.mark.parametrize("exact", [True, False])
def test_numbers_become_float32_either_way(exact: bool) -> None:
    pixels = json_pixels([0, 255, 0.5, 12], "pixels", exact=exact)
    assert pixels.dtype == np.float32
    assert pixels.tolist() == [0.0, 255.0, 0.5, 12.0]


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0, "7"], "not a number"),
        ([0, None], "not a number"),
        ([0, 255.5], "outside 0..255"),
        ([0, -0.5], "outside 0..255"),
    ],
)
def test_a_wrong_value_is_refused_naming_where(values, message: str, exact: bool) -> None:
    with pytest.raises(InvalidInput, match=f"^images\\[3\\] .*{message}"):
        json_pixels(values, "images[3]", exact=exact)


def test_a_boolean_is_no_number() -> None:
    """Never exact: no_booleans found the true in the body."""
    with pytest.raises(InvalidInput, match="not a number"):
        json_pixels([0, True], "pixels", exact=False)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_infinities_are_refused_as_such(value: float) -> None:
    with pytest.raises(InvalidInput, match=r"^pixels holds a NaN or infinite value"):
        checked_pixels(np.array([0.0, value]), "pixels")


def test_an_image_in_either_form_is_28_by_28_by_1() -> None:
    rows = [[float(column) for column in range(28)] for _ in range(28)]
    flat = [value for row in rows for value in row]
    for value in (rows, flat):
        assert image_pixels(value, "pixels", exact=True).shape == (28, 28, 1)
    with pytest.raises(InvalidInput, match="rows of length"):
        image_pixels([*rows[:27], [0] * 27], "pixels", exact=True)
    with pytest.raises(InvalidInput, match="783 items"):
        image_pixels(flat[:783], "pixels", exact=True)
