"""Drawings that are not digits ("negatives"), generated from a seed: letters and symbols rendered
from fonts, and shapes, scribbles, faces and noise drawn with a round pen, each prepared exactly
as the service prepares a drawing (functions/preprocessing/mnist.py: crop to the ink, longer side to
20 px, centre of mass to the middle), so that a negative looks like what the model is asked.

Two generators that share no font, no shape family and no seed:

- TRAINING (`training_negatives`): the fonts DejaVu Sans, Serif and Mono and STIX, and the shape
  families in TRAINING_SHAPES. The model trains on these as an eleventh class, "not a digit".
- HELD_OUT (`held_out_negatives`): the Computer Modern fonts (cm*.ttf) and the shape families in
  HELD_OUT_SHAPES. Training never sees them; they measure how many non-digits the model flags,
  and the gate set's `negatives` come from this generator (with a seed of their own).

The fonts are those matplotlib ships (mpl-data/fonts/ttf), pinned with matplotlib in the
requirements, so a seed always gives the same images. Glyphs that look like a digit are never
used (DIGIT_LIKE): O o Q D U C c (like 0), I l i j J | ! / \\ ( ) [ ] (1), Z z ? (2), y (4),
S s $ (5), G b (6), T t L (7), B & (8), g q a e P p (9, 6 or 2 in some hands), and the digits
themselves. Shapes that are digits are never drawn either: no circle or ellipse alone (0), no
lone vertical or slanted bar (1).

Every negative is drawn with a stroke of varied width: thin and thick font weights, an outline
added to the glyph, a third of the glyphs traced along their skeleton with a uniform round pen,
and every shape drawn with one (3 to 9% of the canvas wide; the site's pen is 6%), since the
site's own digits are drawn with such a pen: the model must not learn "uniform stroke = not a
digit". MNIST training digits redrawn with the site's pen train beside them as digits
(conversion/pen.py, the recipe's `pen_digits`).

    python -m conversion.negatives --out build/negatives.png   # a contact sheet of both sets
"""

from __future__ import annotations

import argparse
import math
from functools import cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage.morphology import skeletonize

from conversion.pen import CANVAS, pen_stroke, pen_width_fraction, prepared

FONT_FOLDER = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
TRAINING_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
)
HELD_OUT_FONTS = ("cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf", "cmti10.ttf")
# Glyphs a person could draw for a digit, or that become one once cropped and centred.
DIGIT_LIKE = frozenset("0123456789OoQDUCcIlijJ|!/\\()[]Zz?ySs$GbTtLB&gqaePp")
LETTERS = "".join(
    character
    for character in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    if character not in DIGIT_LIKE
)
# Symbols the DejaVu and STIX fonts have (Greek, arrows, mathematics), none like a digit.
TRAINING_SYMBOLS = (
    "#%@+=*<>^~{}"
    "\u00d7\u00f7\u2260\u221e"  # multiplication, division, not equal, infinity
    "\u03a3\u03a9\u03bb\u03c0\u03a8\u03a6"  # Greek
    "\u2192\u2191\u2605\u2665\u263a\u2302"  # arrows, star, heart, smiley, house
    "\u03b1\u03b2\u00a7\u00b6\u20ac\u00a3\u2713"  # alpha, beta, section, pilcrow, euro, pound, tick
)
# What the Computer Modern text fonts have in their ASCII positions (no Greek there).
HELD_OUT_SYMBOLS = "#%+=*@"
TRAINING_SHAPES = ("scribble", "polygon", "smiley", "hatching", "zigzag", "noise", "loops")
HELD_OUT_SHAPES = ("star", "heart", "arrow", "spiral", "sun", "house", "grid", "sad_face", "specks")
TRAINING_SEED = 20261207
HELD_OUT_SEED = 20261208
GATE_SEED = 20261209  # the gate set's negatives: the held-out generator, another seed
# Shares of each set: glyphs as rendered, glyphs traced with the pen, shapes.
GLYPH_SHARE, PEN_GLYPH_SHARE = 0.4, 0.2


def training_negatives(count: int, seed: int = TRAINING_SEED) -> np.ndarray:
    """`count` negatives from the training generator: (count, 28, 28) uint8, MNIST polarity."""
    return generate(count, seed, held_out=False)


def held_out_negatives(count: int, seed: int = HELD_OUT_SEED) -> np.ndarray:
    """`count` negatives from the held-out generator (fonts and shapes training never sees)."""
    return generate(count, seed, held_out=True)


def generate(count: int, seed: int, *, held_out: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fonts = HELD_OUT_FONTS if held_out else TRAINING_FONTS
    symbols = HELD_OUT_SYMBOLS if held_out else TRAINING_SYMBOLS
    shapes = HELD_OUT_SHAPES if held_out else TRAINING_SHAPES
    glyphs = LETTERS + symbols
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for index in range(count):
        kind = rng.random()
        if kind < GLYPH_SHARE + PEN_GLYPH_SHARE:
            ink = _glyph(rng, fonts[rng.integers(len(fonts))], glyphs[rng.integers(len(glyphs))])
            if kind >= GLYPH_SHARE:
                ink = _traced(ink, rng)
        else:
            ink = SHAPES[shapes[rng.integers(len(shapes))]](rng)
        images[index] = _as_uint8(prepared(ink))
    return images


def _as_uint8(field: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(field + 0.5), 0, 255).astype(np.uint8)


# --- glyphs ------------------------------------------------------------------------------------


@cache
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_FOLDER / name), size)


def _glyph(rng: np.random.Generator, font_name: str, character: str) -> np.ndarray:
    """The character at a random size, outline and rotation (up to 25 degrees): uint8 ink."""
    size = int(rng.integers(60, 200))
    font = _font(font_name, size)
    outline = int(rng.integers(0, max(1, size // 12)))
    side = size * 2 + 4 * outline
    image = Image.new("L", (side, side), 0)
    ImageDraw.Draw(image).text(
        (side // 4, side // 4),
        character,
        fill=255,
        font=font,
        stroke_width=outline,
        stroke_fill=255,
    )
    image = image.rotate(float(rng.uniform(-25, 25)), resample=Image.BILINEAR, expand=True)
    ink = np.asarray(image)
    if not (ink > 127).any():  # a glyph the font lacks renders empty: draw a scribble instead
        return _scribble(rng)
    return ink


def _traced(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ink's skeleton redrawn with a uniform round pen, as the site's pen draws."""
    skeleton = skeletonize(ink > 127)
    if not skeleton.any():
        return ink
    height, width = ink.shape
    rows, columns = np.nonzero(skeleton)
    extent = max(rows.max() - rows.min(), columns.max() - columns.min(), 1)
    # The pen's width against the drawing: the site's pen on a drawing 25-90% of its canvas.
    relative = pen_width_fraction() / rng.uniform(0.25, 0.9) * rng.uniform(0.5, 1.5)
    padded = np.pad(skeleton, max(height, width) // 4)
    return pen_stroke(padded, max(2.0, relative * extent))


# --- shapes ------------------------------------------------------------------------------------


def _pad(rng: np.random.Generator) -> tuple[Image.Image, ImageDraw.ImageDraw, int]:
    """An empty drawing pad and a pen width (3-9% of the canvas, the site's is 6%)."""
    image = Image.new("L", (CANVAS, CANVAS), 0)
    width = max(2, round(CANVAS * rng.uniform(0.03, 0.09)))
    return image, ImageDraw.Draw(image), width


def _line(draw: ImageDraw.ImageDraw, points, width: int) -> None:
    draw.line([tuple(map(float, point)) for point in points], fill=255, width=width, joint="curve")
    for point in (points[0], points[-1]):  # round caps, as a pen's
        x, y = map(float, point)
        draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)


def _ink(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def _scribble(rng: np.random.Generator) -> np.ndarray:
    """A smoothed random walk of 6-14 turns: a doodle, a crossed-out mark."""
    image, draw, width = _pad(rng)
    turns = int(rng.integers(6, 15))
    points = rng.uniform(40, CANVAS - 40, size=(turns, 2))
    curve = _smooth(points, 8)
    _line(draw, curve, width)
    return _ink(image)


def _smooth(points: np.ndarray, steps: int) -> np.ndarray:
    """A Catmull-Rom curve through `points`."""
    padded = np.vstack([points[:1], points, points[-1:]])
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1 : i + 3]
        for t in np.linspace(0, 1, steps, endpoint=False):
            out.append(
                0.5
                * (
                    2 * p1
                    + (-p0 + p2) * t
                    + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t * t
                    + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
                )
            )
    out.append(padded[-2])
    return np.array(out)


def _polygon(rng: np.random.Generator) -> np.ndarray:
    """A triangle, square, pentagon or hexagon, outlined or filled, never tall and narrow."""
    image, draw, width = _pad(rng)
    sides = int(rng.integers(3, 7))
    centre = CANVAS / 2
    radius = rng.uniform(60, 120)
    start = rng.uniform(0, 2 * math.pi)
    squash = rng.uniform(0.7, 1.0)
    points = [
        (
            centre + radius * math.cos(start + 2 * math.pi * k / sides),
            centre + squash * radius * math.sin(start + 2 * math.pi * k / sides),
        )
        for k in range(sides)
    ]
    if rng.random() < 0.25:
        draw.polygon(points, fill=255)
    else:
        _line(draw, [*points, points[0]], width)
    return _ink(image)


def _face(rng: np.random.Generator, *, sad: bool, square: bool) -> np.ndarray:
    image, draw, width = _pad(rng)
    radius = rng.uniform(80, 125)
    c = CANVAS / 2
    box = (c - radius, c - radius, c + radius, c + radius)
    if square:
        _line(draw, [box[:2], (box[2], box[1]), box[2:], (box[0], box[3]), box[:2]], width)
    else:
        draw.ellipse(box, outline=255, width=width)
    eye = radius * 0.35
    dot = max(width, radius * 0.08)
    for side in (-1, 1):
        x, y = c + side * eye, c - eye
        draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=255)
    mouth = radius * 0.5
    top = c + (mouth * 0.6 if sad else 0.0)
    arc = (c - mouth, top - mouth * 0.5, c + mouth, top + mouth * 0.5)
    if sad:
        draw.arc(arc, 200, 340, fill=255, width=width)
    else:
        draw.arc(arc, 20, 160, fill=255, width=width)
    return _ink(image)


def _hatching(rng: np.random.Generator) -> np.ndarray:
    """3-7 long lines in two or more directions: crossed-out, hatched."""
    image, draw, width = _pad(rng)
    for _ in range(int(rng.integers(3, 8))):
        angle = rng.uniform(0, math.pi)
        centre = rng.uniform(80, CANVAS - 80, size=2)
        half = rng.uniform(50, 120)
        delta = half * np.array([math.cos(angle), math.sin(angle)])
        _line(draw, [centre - delta, centre + delta], width)
    return _ink(image)


def _zigzag(rng: np.random.Generator) -> np.ndarray:
    """A horizontal zigzag or wave of 4-9 teeth."""
    image, draw, width = _pad(rng)
    teeth = int(rng.integers(4, 10))
    xs = np.linspace(30, CANVAS - 30, teeth * 2 + 1)
    amplitude = rng.uniform(20, 70)
    ys = CANVAS / 2 + amplitude * np.where(np.arange(len(xs)) % 2, 1, -1)
    points = np.stack([xs, ys], axis=1)
    if rng.random() < 0.5:
        points = _smooth(points, 6)
    _line(draw, points, width)
    return _ink(image)


def _loops(rng: np.random.Generator) -> np.ndarray:
    """A row of 3-6 joined loops, as a pen tests itself (eeee, llll)."""
    image, draw, width = _pad(rng)
    loops = int(rng.integers(3, 7))
    t = np.linspace(0, loops * 2 * math.pi, loops * 24)
    radius = rng.uniform(20, 40)
    xs = 40 + t / t[-1] * (CANVAS - 80) + radius * np.cos(t + math.pi)
    ys = CANVAS / 2 + radius * 1.3 * np.sin(t + math.pi)
    _line(draw, np.stack([xs, ys], axis=1), width)
    return _ink(image)


def _noise(rng: np.random.Generator) -> np.ndarray:
    """Random ink: uniform noise over a patch, blotches, or a raw noisy square."""
    choice = rng.random()
    side = int(rng.integers(40, CANVAS))
    if choice < 0.4:
        patch = rng.random((side, side)) * (rng.random((side, side)) < rng.uniform(0.2, 1.0))
        return np.round(patch * 255).astype(np.uint8)
    if choice < 0.7:
        blobs = rng.random((side // 10 + 2, side // 10 + 2))
        smooth = np.asarray(Image.fromarray((blobs * 255).astype(np.uint8)).resize((side, side)))
        return np.where(smooth > rng.uniform(100, 180), smooth, 0).astype(np.uint8)
    return rng.integers(0, 256, size=(28, 28), dtype=np.uint8)


# held-out families


def _star(rng: np.random.Generator) -> np.ndarray:
    image, draw, width = _pad(rng)
    tips = int(rng.integers(5, 8))
    c, outer = CANVAS / 2, rng.uniform(80, 125)
    inner = outer * rng.uniform(0.35, 0.55)
    start = rng.uniform(0, 2 * math.pi)
    points = [
        (
            c + (outer if k % 2 == 0 else inner) * math.cos(start + math.pi * k / tips),
            c + (outer if k % 2 == 0 else inner) * math.sin(start + math.pi * k / tips),
        )
        for k in range(2 * tips)
    ]
    _line(draw, [*points, points[0]], width)
    return _ink(image)


def _heart(rng: np.random.Generator) -> np.ndarray:
    image, draw, width = _pad(rng)
    t = np.linspace(0, 2 * math.pi, 120)
    scale = rng.uniform(5, 7.5)
    xs = CANVAS / 2 + scale * 16 * np.sin(t) ** 3
    ys = CANVAS / 2 - scale * (
        13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    )
    _line(draw, np.stack([xs, ys], axis=1), width)
    return _ink(image)


def _arrow(rng: np.random.Generator) -> np.ndarray:
    """A horizontal or diagonal arrow with its head (never vertical: that would be a 1)."""
    image, draw, width = _pad(rng)
    angle = rng.choice([0.0, math.pi, math.pi / 4, -math.pi / 4, 3 * math.pi / 4])
    c = np.array([CANVAS / 2, CANVAS / 2])
    half = rng.uniform(80, 120)
    direction = np.array([math.cos(angle), math.sin(angle)])
    tail, tip = c - half * direction, c + half * direction
    _line(draw, [tail, tip], width)
    for turn in (2.6, -2.6):
        head = np.array([math.cos(angle + turn), math.sin(angle + turn)]) * half * 0.45
        _line(draw, [tip, tip + head], width)
    return _ink(image)


def _spiral(rng: np.random.Generator) -> np.ndarray:
    image, draw, width = _pad(rng)
    turns = rng.uniform(2.0, 3.5)
    t = np.linspace(0, turns * 2 * math.pi, 200)
    radius = 10 + t / t[-1] * rng.uniform(90, 125)
    xs = CANVAS / 2 + radius * np.cos(t)
    ys = CANVAS / 2 + radius * np.sin(t)
    _line(draw, np.stack([xs, ys], axis=1), width)
    return _ink(image)


def _sun(rng: np.random.Generator) -> np.ndarray:
    image, draw, width = _pad(rng)
    c, r = CANVAS / 2, rng.uniform(30, 50)
    draw.ellipse((c - r, c - r, c + r, c + r), outline=255, width=width)
    rays = int(rng.integers(6, 12))
    for k in range(rays):
        a = 2 * math.pi * k / rays
        inner, outer = r + 15, r + rng.uniform(50, 80)
        _line(
            draw,
            [
                (c + inner * math.cos(a), c + inner * math.sin(a)),
                (c + outer * math.cos(a), c + outer * math.sin(a)),
            ],
            width,
        )
    return _ink(image)


def _house(rng: np.random.Generator) -> np.ndarray:
    image, draw, width = _pad(rng)
    left, right = rng.uniform(50, 80), rng.uniform(200, 230)
    floor, wall = rng.uniform(220, 250), rng.uniform(130, 160)
    roof = rng.uniform(30, 70)
    _line(draw, [(left, wall), (left, floor), (right, floor), (right, wall), (left, wall)], width)
    _line(draw, [(left, wall), ((left + right) / 2, roof), (right, wall)], width)
    return _ink(image)


def _grid(rng: np.random.Generator) -> np.ndarray:
    """A noughts-and-crosses grid or a ladder: parallel lines both ways."""
    image, draw, width = _pad(rng)
    across, down = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    for k in range(across):
        y = 40 + (k + 1) * (CANVAS - 80) / (across + 1)
        _line(draw, [(30, y), (CANVAS - 30, y)], width)
    for k in range(down):
        x = 40 + (k + 1) * (CANVAS - 80) / (down + 1)
        _line(draw, [(x, 30), (x, CANVAS - 30)], width)
    return _ink(image)


def _specks(rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper dots of the pen's size scattered over the pad."""
    image, draw, width = _pad(rng)
    for _ in range(int(rng.integers(8, 40))):
        x, y = rng.uniform(20, CANVAS - 20, size=2)
        r = width / 2 * rng.uniform(0.5, 1.5)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    return _ink(image)


SHAPES = {
    "scribble": _scribble,
    "polygon": _polygon,
    "smiley": lambda rng: _face(rng, sad=False, square=False),
    "hatching": _hatching,
    "zigzag": _zigzag,
    "noise": _noise,
    "loops": _loops,
    "star": _star,
    "heart": _heart,
    "arrow": _arrow,
    "spiral": _spiral,
    "sun": _sun,
    "house": _house,
    "grid": _grid,
    "sad_face": lambda rng: _face(rng, sad=True, square=True),
    "specks": _specks,
}


def contact_sheet(images: np.ndarray, columns: int = 20) -> Image.Image:
    rows = math.ceil(len(images) / columns)
    sheet = np.zeros((rows * 30, columns * 30), dtype=np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        sheet[row * 30 + 1 : row * 30 + 29, column * 30 + 1 : column * 30 + 29] = image
    return Image.fromarray(255 - sheet)


def main() -> None:
    parser = argparse.ArgumentParser(description="a contact sheet of the two generators")
    parser.add_argument("--out", default="build/negatives.png")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    images = np.concatenate([training_negatives(args.count), held_out_negatives(args.count)])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(images).save(args.out)
    print(f"{args.count} training, then {args.count} held-out negatives -> {args.out}")


if __name__ == "__main__":
    main()
