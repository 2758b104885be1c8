"""The algorithm the browser shares (functions/preprocessing/mnist.py): ink from RGBA, then the
28x28 field as MNIST made it, held to the golden files (the JS twin is held to them in tests/js)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from functions.preprocessing.mnist import (
    BOX_SIZE,
    CENTRE,
    EMPTY_THRESHOLD,
    ink_from_rgba,
    to_mnist,
)
from tests.preprocessing.samples import GOLDEN_FILES, drawing, load_golden, opaque, transparent


def placed(digit: np.ndarray, scale: int, top: int, left: int, size: int) -> np.ndarray:
    """uint8 ink: an MNIST digit enlarged `scale` times (nearest) at (top, left) in a square."""
    ink = np.zeros((size, size), dtype=np.uint8)
    enlarged = np.kron(digit, np.ones((scale, scale), dtype=np.uint8))
    ink[top : top + enlarged.shape[0], left : left + enlarged.shape[1]] = enlarged
    return ink


def ink_bounding_box(values: np.ndarray) -> tuple[int, int]:
    """(height, width) of the pixels above 0."""
    rows = np.flatnonzero(values.any(axis=1))
    columns = np.flatnonzero(values.any(axis=0))
    return rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1


def centre_of_mass(values: np.ndarray) -> tuple[float, float]:
    rows, columns = np.indices(values.shape)
    mass = values.sum()
    return (rows * values).sum() / mass, (columns * values).sum() / mass


# --- ink ---------------------------------------------------------------------------------------


def test_a_transparent_background_makes_alpha_the_ink_whatever_the_colour() -> None:
    rgba = np.zeros((3, 3, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # white ink: the colour must not matter
    rgba[0, 0, 3], rgba[1, 1, 3] = 255, 51
    np.testing.assert_allclose(
        ink_from_rgba(rgba), [[1.0, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.0]], atol=1e-7
    )


def test_a_stray_translucent_pixel_leaves_an_opaque_picture_read_by_luminance() -> None:
    one = opaque(255 - drawing())  # a black L on white paper, every pixel opaque ...
    one[60, 124, 3] = 254  # ... but one of its ink pixels
    assert np.array_equal(ink_from_rgba(one), ink_from_rgba(opaque(255 - drawing())))


def test_a_translucent_background_counts_as_no_ink() -> None:
    ink = drawing()
    faint = transparent(np.maximum(ink, 40).astype(np.uint8))  # a veil of alpha 40 all over
    assert ink_from_rgba(faint)[0, 0] == 0.0
    np.testing.assert_array_equal(
        to_mnist(ink_from_rgba(faint)), to_mnist(ink_from_rgba(transparent(ink)))
    )


def test_opaque_grey_paper_maps_to_no_ink_and_dark_ink_to_full() -> None:
    grey = np.full((10, 10), 170, dtype=np.uint8)
    grey[4:6, 4:6] = 0
    ink = ink_from_rgba(opaque(grey))
    assert ink.dtype == np.float32
    assert ink[0, 0] == 0.0
    assert ink[5, 5] == pytest.approx(1.0)


def test_ink_needs_rgba_uint8() -> None:
    with pytest.raises(ValueError, match="HxWx4"):
        ink_from_rgba(np.zeros((4, 4, 3), dtype=np.uint8))


# --- to_mnist ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rgba",
    [
        opaque(np.full((40, 30), 255, dtype=np.uint8)),
        opaque(np.zeros((40, 30), dtype=np.uint8)),
        transparent(np.zeros((40, 30), dtype=np.uint8)),
        opaque(np.full((40, 30), 250, dtype=np.uint8)),
    ],
    ids=["white", "black", "transparent", "near-white"],
)
def test_blank_picture_is_empty(rgba: np.ndarray) -> None:
    assert to_mnist(ink_from_rgba(rgba)) is None


def test_faint_ink_below_threshold_is_empty() -> None:
    ink = np.zeros((20, 20))
    ink[5, 5] = EMPTY_THRESHOLD
    assert to_mnist(ink) is None


def test_float32_ink_is_compared_with_the_threshold_in_float64() -> None:
    ink = np.zeros((20, 20), dtype=np.float32)
    ink[5, 5] = EMPTY_THRESHOLD  # rounds up in float32, so it counts as ink, as in JS
    assert to_mnist(ink) is not None


def test_output_is_28x28_float32_within_0_255() -> None:
    result = to_mnist(ink_from_rgba(opaque(255 - drawing())))
    assert result is not None
    assert result.shape == (28, 28)
    assert result.dtype == np.float32
    assert result.min() >= 0.0
    assert result.max() <= 255.0


def test_polarity_and_transparency_give_the_same_result() -> None:
    ink = drawing()
    black_on_white = to_mnist(ink_from_rgba(opaque(255 - ink)))
    white_on_black = to_mnist(ink_from_rgba(opaque(ink)))
    alpha_ink = to_mnist(ink_from_rgba(transparent(ink)))
    np.testing.assert_allclose(white_on_black, black_on_white, atol=1.0)
    np.testing.assert_allclose(alpha_ink, black_on_white, atol=1.0)


def test_longer_side_is_scaled_to_20_and_aspect_kept() -> None:
    result = to_mnist(ink_from_rgba(opaque(255 - drawing())))
    height, width = ink_bounding_box(result)
    assert height == BOX_SIZE  # the L is 60 px tall ...
    assert width == 10  # ... and 30 px wide


def test_wide_drawing_scales_its_width_to_20() -> None:
    result = to_mnist(ink_from_rgba(opaque(255 - drawing().T)))
    assert ink_bounding_box(result) == (10, BOX_SIZE)


def test_centre_of_mass_lands_on_14_14() -> None:
    result = to_mnist(ink_from_rgba(opaque(255 - drawing())))
    row, column = centre_of_mass(result)
    assert abs(row - CENTRE) <= 0.5
    assert abs(column - CENTRE) <= 0.5


def test_single_pixel_fills_the_box() -> None:
    ink = np.zeros((30, 30))
    ink[3, 7] = 1.0
    result = to_mnist(ink)
    assert ink_bounding_box(result) == (BOX_SIZE, BOX_SIZE)
    assert result.max() == 255.0


def test_to_mnist_needs_a_2d_array() -> None:
    with pytest.raises(ValueError, match="HxW"):
        to_mnist(np.zeros((4, 4, 1)))


@pytest.mark.parametrize("index", range(10))
def test_enlarged_mnist_digit_comes_back_as_itself(
    mnist: dict[str, np.ndarray], index: int
) -> None:
    digit = mnist["x_test"][index]
    picture = opaque(255 - placed(digit, scale=5, top=20, left=150, size=300))
    result = to_mnist(ink_from_rgba(picture))
    correlation = np.corrcoef(result.ravel(), digit.ravel().astype(np.float64))[0, 1]
    assert correlation > 0.99  # nearest enlargement undone by area averaging: nearly exact


# --- golden files ------------------------------------------------------------------------------


def test_golden_files_are_there() -> None:
    assert len(GOLDEN_FILES) >= 8


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda path: path.stem)
def test_golden_file_matches_python(path: Path) -> None:
    rgba, expected = load_golden(path)
    result = to_mnist(ink_from_rgba(rgba))
    if expected is None:
        assert result is None
    else:
        np.testing.assert_allclose(result.ravel(), expected, atol=1.0)
