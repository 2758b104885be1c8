"""Uploaded pictures (functions/preprocessing/pictures.py): decoded to ink within bounds of
size, memory and concurrency, then prepared as the browser prepares a drawing."""

from __future__ import annotations

import io
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from benchmarks.picture_decoding import digit_on_paper, largest_size, measure
from functions.preprocessing import pictures
from functions.preprocessing.mnist import ink_from_rgba, to_mnist
from functions.preprocessing.pictures import (
    MAX_CONCURRENT_DECODES,
    MAX_JPEG_PIXELS,
    MAX_JPEG_SIDE,
    MAX_PIXELS,
    MAX_SIDE,
    WORKING_SIDE,
    PictureTooLarge,
    UndecodableImage,
    image_bytes_to_ink,
    preprocess_image_bytes,
)
from functions.serving.errors import DecodersBusy
from tests.preprocessing.samples import GOLDEN_FILES, drawing, load_golden, opaque, transparent


def encoded(rgba: np.ndarray, image_format: str, **options: object) -> bytes:
    mode = "RGB" if image_format == "JPEG" else "RGBA"
    buffer = io.BytesIO()
    Image.fromarray(rgba).convert(mode).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def test_a_png_with_a_stray_translucent_pixel_is_read_as_opaque() -> None:
    one = opaque(255 - drawing())  # a black L on white paper, every pixel opaque ...
    one[60, 124, 3] = 254  # ... but one of its ink pixels
    from_png = preprocess_image_bytes(encoded(one, "PNG"))
    np.testing.assert_array_equal(from_png, to_mnist(ink_from_rgba(opaque(255 - drawing()))))


# --- decoding ----------------------------------------------------------------------------------


def test_png_and_jpeg_give_nearly_the_same_result() -> None:
    rgba = opaque(255 - drawing())
    from_png = preprocess_image_bytes(encoded(rgba, "PNG"))
    from_jpeg = preprocess_image_bytes(encoded(rgba, "JPEG", quality=90))
    np.testing.assert_array_equal(from_png, to_mnist(ink_from_rgba(rgba)))
    # Hard synthetic edges ring in JPEG; at quality 90 the ringing stays below EMPTY_THRESHOLD.
    assert np.abs(from_png - from_jpeg).max() <= 8.0


def test_transparent_png_keeps_its_alpha() -> None:
    rgba = transparent(drawing())
    np.testing.assert_array_equal(image_bytes_to_ink(encoded(rgba, "PNG")), ink_from_rgba(rgba))


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    data = encoded(opaque(255 - drawing(height=40, width=60)), "JPEG", exif=exif)
    assert image_bytes_to_ink(data).shape == (60, 40)


def test_blank_png_is_empty() -> None:
    assert preprocess_image_bytes(encoded(opaque(np.full((30, 30), 255, np.uint8)), "PNG")) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        np.random.default_rng(7).integers(0, 256, size=4096, dtype=np.uint8).tobytes(),
        encoded(opaque(255 - drawing()), "PNG")[:200],
        encoded(opaque(255 - drawing()), "JPEG")[:300],
        encoded(opaque(255 - drawing()), "GIF"),
    ],
    ids=["empty", "random", "truncated-png", "truncated-jpeg", "gif"],
)
def test_undecodable_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(UndecodableImage):
        image_bytes_to_ink(data)


def test_undecodable_image_is_a_value_error() -> None:
    assert issubclass(UndecodableImage, ValueError)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    buffer = io.BytesIO()
    width, height = 8000, 6000  # 48 Mpx in a few kB of PNG
    assert width * height > MAX_PIXELS
    Image.new("1", (width, height)).save(buffer, format="PNG")
    with pytest.raises(UndecodableImage, match=f"48000000 pixels; at most {MAX_PIXELS}"):
        image_bytes_to_ink(buffer.getvalue())


def test_huge_decompression_bomb_is_refused_by_pillow_too() -> None:
    buffer = io.BytesIO()
    Image.new("1", (20000, 10000)).save(buffer, format="PNG")  # past Pillow's own hard limit
    with pytest.raises(UndecodableImage, match=f"too many pixels; at most {MAX_PIXELS}"):
        image_bytes_to_ink(buffer.getvalue())


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda path: path.stem)
def test_golden_picture_sent_as_png_gets_exactly_its_golden_result(path: Path) -> None:
    rgba, _ = load_golden(path)
    expected = to_mnist(ink_from_rgba(rgba))
    result = preprocess_image_bytes(encoded(rgba, "PNG"))
    if expected is None:
        assert result is None
    else:
        np.testing.assert_array_equal(result, expected)


def test_unusable_exif_orientation_is_ignored() -> None:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 9  # no such orientation
    Image.fromarray(drawing()).save(buffer, format="PNG", exif=exif.tobytes())
    np.testing.assert_allclose(
        preprocess_image_bytes(buffer.getvalue()),
        preprocess_image_bytes(encoded(opaque(drawing()), "PNG")),
        atol=1,
    )


def test_a_very_long_side_is_refused_before_decoding() -> None:
    line = Image.new("L", (MAX_SIDE + 1, 1), 255)
    buffer = io.BytesIO()
    line.save(buffer, format="PNG")
    with pytest.raises(UndecodableImage, match="each side may be at most"):
        preprocess_image_bytes(buffer.getvalue())


# --- what pictures cost: depth, size, memory, concurrency ---------------------------------------

# Measured peaks are under 100 MB (benchmarks/picture_decoding.py); before these bounds every
# one of these pictures cost 324 MB. Generous: other allocators and Pillow versions differ.
DECODE_MEMORY_BOUND_MB = 160


def grey_png(grey: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return buffer.getvalue()


def with_size_in_header(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header claiming another size: what a bomb does, in 1 kB."""
    start = next(jpeg.index(marker) for marker in (b"\xff\xc0", b"\xff\xc2") if marker in jpeg)
    return jpeg[: start + 5] + struct.pack(">HH", height, width) + jpeg[start + 9 :]


def test_a_16_bit_grey_png_reads_like_its_8_bit_twin() -> None:
    grey = np.full((150, 200), 0xE0, dtype=np.uint8)
    grey[30:90, 120:128] = 0x50  # pencil-grey ink, well above the paper's level
    grey[82:90, 120:150] = 0x50
    sixteen_bit = grey_png(grey.astype(np.uint16) * 257)
    assert Image.open(io.BytesIO(sixteen_bit)).mode.startswith("I")
    result = preprocess_image_bytes(sixteen_bit)
    assert result is not None  # clipped to 8 bits, all of it read as white paper: no ink
    np.testing.assert_array_equal(result, preprocess_image_bytes(grey_png(grey)))


def test_a_grey_png_is_read_exactly_as_its_rgba_twin() -> None:
    grey = 255 - drawing()
    grey[0:10, 0:200] = 200  # a grey band on the border, so the luminance is not only 0 and 1
    np.testing.assert_array_equal(image_bytes_to_ink(grey_png(grey)), ink_from_rgba(opaque(grey)))


def test_a_palette_png_with_a_transparent_colour_reads_its_alpha() -> None:
    rgba = transparent(drawing())
    buffer = io.BytesIO()
    Image.fromarray(rgba).convert("P").save(buffer, format="PNG", transparency=0)
    picture = Image.open(io.BytesIO(buffer.getvalue()))
    assert picture.mode == "P"
    assert "transparency" in picture.info
    np.testing.assert_array_equal(
        preprocess_image_bytes(buffer.getvalue()), to_mnist(ink_from_rgba(rgba))
    )


def test_pictures_up_to_the_working_side_are_read_at_full_size() -> None:
    grey = np.full((WORKING_SIDE, 600), 255, dtype=np.uint8)
    grey[100:1900, 200:260] = 0
    assert image_bytes_to_ink(grey_png(grey)).shape == (WORKING_SIDE, 600)


@pytest.mark.parametrize(
    ("image_format", "size"),
    [("PNG", (4000, 3000)), ("JPEG", (4800, 3600))],  # the JPEG is scaled by 1/2 as decoded
)
def test_a_large_picture_is_reduced_first_and_comes_back_close(
    mnist: dict[str, np.ndarray], image_format: str, size: tuple[int, int]
) -> None:
    digit = mnist["x_test"][0]  # a 7, drawn 1200 px tall off-centre
    ink = np.asarray(Image.fromarray(digit).resize((1200, 1200), Image.Resampling.BILINEAR))
    page = np.full(size[::-1], 255, dtype=np.uint8)
    page[1000:2200, 2500:3700] = 255 - ink
    data = encoded(
        opaque(page), image_format, **({"quality": 90} if image_format == "JPEG" else {})
    )
    reduced = image_bytes_to_ink(data)
    assert max(reduced.shape) <= WORKING_SIDE
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
    full_size = to_mnist(ink_from_rgba(decoded))
    result = to_mnist(reduced)
    assert np.corrcoef(result.ravel(), full_size.ravel())[0, 1] > 0.97
    assert np.abs(result - full_size).mean() < 8.0  # grey levels, of 255


@pytest.mark.parametrize(("chunks", "kib_each"), [(1, 600), (8, 200)])
def test_a_png_whose_text_inflates_past_a_small_allowance_is_refused(
    chunks: int, kib_each: int
) -> None:
    text = PngImagePlugin.PngInfo()  # Pillow alone would inflate up to 1 MiB a chunk, 64 in all
    for index in range(chunks):
        text.add_text(f"Comment{index}", "0" * (kib_each * 1024), zip=True)
    buffer = io.BytesIO()
    Image.fromarray(255 - drawing()).save(buffer, format="PNG", pnginfo=text)
    assert len(buffer.getvalue()) < 64 * 1024
    with pytest.raises(UndecodableImage, match="damaged"):
        image_bytes_to_ink(buffer.getvalue())


def test_a_png_over_the_pixel_limit_is_too_large() -> None:
    buffer = io.BytesIO()
    Image.new("1", (MAX_SIDE, MAX_PIXELS // MAX_SIDE + 1)).save(buffer, format="PNG")
    with pytest.raises(PictureTooLarge, match=f"at most {MAX_PIXELS} are accepted"):
        image_bytes_to_ink(buffer.getvalue())


def test_a_jpeg_over_its_pixel_limit_is_refused_from_its_header() -> None:
    small = encoded(opaque(255 - drawing(height=64, width=64)), "JPEG")
    claimed = with_size_in_header(small, 8000, MAX_JPEG_PIXELS // 8000 + 1)
    with pytest.raises(PictureTooLarge, match=f"at most {MAX_JPEG_PIXELS} are accepted"):
        image_bytes_to_ink(claimed)


def test_a_progressive_jpeg_is_bounded_by_what_its_decoder_holds() -> None:
    page = opaque(255 - drawing(height=64, width=64))
    full_colour = encoded(page, "JPEG", progressive=True, subsampling=0)
    with pytest.raises(PictureTooLarge, match="progressive JPEG"):
        image_bytes_to_ink(with_size_in_header(full_colour, 4800, 3600))  # 99 MiB to decode
    subsampled = encoded(page, "JPEG", progressive=True, subsampling=2)
    try:  # 49 MiB: within the bound, so it is decoded (and its missing data read as grey)
        image_bytes_to_ink(with_size_in_header(subsampled, 4800, 3600))
    except PictureTooLarge:
        pytest.fail("a 4:2:0 progressive JPEG of 17 Mpx was refused as too large")
    except UndecodableImage:
        pass  # a decoder may also call it truncated: that is not a matter of size


@pytest.mark.parametrize(
    ("image_format", "mode", "options"),
    [
        ("PNG", "RGBA", {"compress_level": 1}),  # quicker to make, as costly to decode
        ("PNG", "1", {}),
        ("JPEG", "RGB", {"quality": 95, "progressive": True, "subsampling": 2}),
    ],
    ids=["png-rgba", "png-1-bit", "jpeg-progressive"],
)
def test_the_largest_accepted_pictures_decode_within_a_memory_bound(
    image_format: str, mode: str, options: dict[str, object]
) -> None:
    if image_format == "PNG":
        size = largest_size(MAX_PIXELS, MAX_SIDE, aspect=1.0)
    else:
        size = largest_size(MAX_JPEG_PIXELS, MAX_JPEG_SIDE, aspect=4 / 3)
    buffer = io.BytesIO()
    digit_on_paper(size, mode).save(buffer, format=image_format, **options)
    figure = measure(buffer.getvalue())  # a fresh interpreter: its own peak RSS
    assert figure["has_ink"]
    assert figure["peak_rss_mb"] < DECODE_MEMORY_BOUND_MB


def test_decodes_beyond_the_limit_wait_briefly_then_are_turned_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pictures, "DECODE_SLOT_WAIT_SECONDS", 0.2)
    picture = encoded(opaque(255 - drawing()), "PNG")
    taken = 0
    try:
        while pictures._decode_slots.acquire(blocking=False):
            taken += 1
        assert taken == MAX_CONCURRENT_DECODES
        with pytest.raises(DecodersBusy, match=f"all {MAX_CONCURRENT_DECODES} picture decoders"):
            preprocess_image_bytes(picture)
        threading.Timer(0.05, pictures._decode_slots.release).start()
        taken -= 1  # one slot frees up while the next request waits: it is served
        assert preprocess_image_bytes(picture) is not None
    finally:
        for _ in range(taken):
            pictures._decode_slots.release()
    assert preprocess_image_bytes(picture) is not None


def test_a_jpeg_with_a_multi_picture_header_meets_the_jpeg_limits() -> None:
    # Pillow opens such a file as "MPO"; it must not slip past the progressive JPEG's limit.
    picture = Image.new("RGB", (4000, 4000), "white")
    body = io.BytesIO()
    picture.save(
        body,
        "MPO",
        save_all=True,
        append_images=[picture.resize((8, 8))],
        progressive=True,
        subsampling=0,
        quality=95,
    )
    assert Image.open(io.BytesIO(body.getvalue())).format == "MPO"
    with pytest.raises(PictureTooLarge, match="progressive JPEG"):
        preprocess_image_bytes(body.getvalue())


def test_a_damaged_picture_is_refused_without_quoting_its_bytes() -> None:
    body = io.BytesIO()
    Image.new("L", (64, 64), 255).save(body, "PNG")
    damaged = body.getvalue()[: len(body.getvalue()) // 2]  # Pillow's message may quote bytes
    with pytest.raises(UndecodableImage) as refusal:
        preprocess_image_bytes(damaged)
    assert str(refusal.value) == "its data is damaged or incomplete"
