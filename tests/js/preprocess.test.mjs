// The browser's preprocessing (static-web/js/preprocess.js), run in node: `node --test tests/js/`.
// Parity: for every golden file written from the Python implementation, the JS result must be
// within 1 grey level on every pixel (tests/golden/make_preprocessing_golden.py).

import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";
import { inflateSync } from "node:zlib";

import {
  BOX_SIZE,
  CENTRE,
  EMPTY_THRESHOLD,
  FIELD_SIZE,
  inkFromRGBA,
  preprocessRGBA,
  toMnist,
} from "../../static-web/js/preprocess.js";

const GOLDEN_DIR = new URL("../golden/preprocessing/", import.meta.url);
const [WIDTH, HEIGHT] = [200, 150];

/** uint8 ink (255 = ink): an off-centre L, 60 px tall and 30 px wide, as in the Python tests. */
function drawing() {
  const ink = new Uint8Array(WIDTH * HEIGHT);
  const fill = (top, bottom, left, right) => {
    for (let row = top; row < bottom; row += 1) {
      ink.fill(255, row * WIDTH + left, row * WIDTH + right);
    }
  };
  fill(30, 90, 120, 128);
  fill(82, 90, 120, 150);
  return ink;
}

function rgba(ink, pixel) {
  const data = new Uint8ClampedArray(ink.length * 4);
  ink.forEach((value, i) => data.set(pixel(value), i * 4));
  return data;
}

const blackOnWhite = (ink) => rgba(ink, (v) => [255 - v, 255 - v, 255 - v, 255]);
const whiteOnBlack = (ink) => rgba(ink, (v) => [v, v, v, 255]);
const transparentBlackInk = (ink) => rgba(ink, (v) => [0, 0, 0, v]);

function inkBoundingBox(result) {
  let [top, bottom, left, right] = [FIELD_SIZE, -1, FIELD_SIZE, -1];
  result.forEach((value, i) => {
    if (value > 0) {
      const [row, column] = [Math.floor(i / FIELD_SIZE), i % FIELD_SIZE];
      [top, bottom] = [Math.min(top, row), Math.max(bottom, row)];
      [left, right] = [Math.min(left, column), Math.max(right, column)];
    }
  });
  return { height: bottom - top + 1, width: right - left + 1 };
}

function centreOfMass(result) {
  let [mass, rowMoment, columnMoment] = [0, 0, 0];
  result.forEach((value, i) => {
    mass += value;
    rowMoment += Math.floor(i / FIELD_SIZE) * value;
    columnMoment += (i % FIELD_SIZE) * value;
  });
  return { row: rowMoment / mass, column: columnMoment / mass };
}

function maxDifference(a, b) {
  return a.reduce((worst, value, i) => Math.max(worst, Math.abs(value - b[i])), 0);
}

function loadGolden(file) {
  const golden = JSON.parse(readFileSync(new URL(file, GOLDEN_DIR), "utf8"));
  assert.equal(golden.rgba_encoding, "zlib+base64");
  return { ...golden, rgba: new Uint8Array(inflateSync(Buffer.from(golden.rgba, "base64"))) };
}

test("blank pictures are empty", () => {
  const blank = new Uint8Array(WIDTH * HEIGHT);
  assert.equal(preprocessRGBA(blackOnWhite(blank), WIDTH, HEIGHT), null);
  assert.equal(preprocessRGBA(whiteOnBlack(blank), WIDTH, HEIGHT), null);
  assert.equal(preprocessRGBA(transparentBlackInk(blank), WIDTH, HEIGHT), null);
});

test("ink at the threshold is still empty", () => {
  const ink = new Float64Array(400); // float32 would round 0.05 up, past the threshold
  ink[45] = EMPTY_THRESHOLD;
  assert.equal(toMnist(ink, 20, 20), null);
});

test("a transparent background makes alpha the ink whatever the colour", () => {
  const data = new Uint8ClampedArray(3 * 3 * 4).fill(255); // white ink: colour must not matter
  for (let i = 3; i < data.length; i += 4) data[i] = 0;
  data[3] = 255; // a corner
  data[4 * 4 + 3] = 51; // the centre
  const ink = Array.from(inkFromRGBA(data, 3, 3));
  assert.deepEqual(ink, [1, 0, 0, 0, Math.fround(0.2), 0, 0, 0, 0]);
});

test("a stray translucent pixel leaves an opaque picture read by its luminance", () => {
  const data = new Uint8ClampedArray(5 * 5 * 4).fill(255); // opaque white paper
  data.set([0, 0, 0, 254], 12 * 4); // one black pixel, alpha 254, in the middle
  const ink = inkFromRGBA(data, 5, 5);
  assert.equal(ink[12], 1);
  assert.equal(ink[0], 0);
});

test("a translucent background counts as no ink", () => {
  const data = new Uint8ClampedArray(5 * 5 * 4); // black, alpha 51 everywhere ...
  for (let i = 3; i < data.length; i += 4) data[i] = 51;
  data[12 * 4 + 3] = 255; // ... but an opaque centre
  const ink = inkFromRGBA(data, 5, 5);
  assert.equal(ink[12], 1);
  assert.equal(ink[0], 0);
});

test("opaque grey paper maps to no ink", () => {
  const data = new Uint8ClampedArray(10 * 10 * 4).fill(170);
  data.set([0, 0, 0], 55 * 4);
  for (let i = 3; i < data.length; i += 4) data[i] = 255;
  const ink = inkFromRGBA(data, 10, 10);
  assert.equal(ink[0], 0);
  assert.ok(Math.abs(ink[55] - 1) < 1e-6);
});

test("black on white, white on black and alpha ink give the same result", () => {
  const ink = drawing();
  const reference = preprocessRGBA(blackOnWhite(ink), WIDTH, HEIGHT);
  assert.equal(reference.length, FIELD_SIZE * FIELD_SIZE);
  assert.ok(maxDifference(preprocessRGBA(whiteOnBlack(ink), WIDTH, HEIGHT), reference) <= 1);
  assert.ok(maxDifference(preprocessRGBA(transparentBlackInk(ink), WIDTH, HEIGHT), reference) <= 1);
});

test("the longer side becomes 20 px and the aspect ratio is kept", () => {
  const result = preprocessRGBA(blackOnWhite(drawing()), WIDTH, HEIGHT);
  assert.deepEqual(inkBoundingBox(result), { height: BOX_SIZE, width: 10 });
  assert.ok(Math.max(...result) <= 255 && Math.min(...result) >= 0);
});

test("the centre of mass lands within half a pixel of (14, 14)", () => {
  const { row, column } = centreOfMass(preprocessRGBA(blackOnWhite(drawing()), WIDTH, HEIGHT));
  assert.ok(Math.abs(row - CENTRE) <= 0.5, `row ${row}`);
  assert.ok(Math.abs(column - CENTRE) <= 0.5, `column ${column}`);
});

test("a wide drawing gets its width scaled to 20 px", () => {
  const ink = new Uint8Array(WIDTH * HEIGHT);
  for (let row = 70; row < 82; row += 1) ink.fill(255, row * WIDTH + 20, row * WIDTH + 140);
  const { width, height } = inkBoundingBox(preprocessRGBA(transparentBlackInk(ink), WIDTH, HEIGHT));
  assert.deepEqual({ width, height }, { width: BOX_SIZE, height: 2 });
});

test("where the digit is drawn and how large do not change the result", () => {
  const small = drawing(); // the L, 60 px tall, at (30, 120)
  const large = new Uint8Array(WIDTH * HEIGHT);
  small.forEach((value, i) => {
    if (value === 0) return;
    const [row, column] = [Math.floor(i / WIDTH), i % WIDTH];
    // Twice the size, moved to the top-left corner: every pixel becomes a 2x2 block.
    for (const [dr, dc] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
      large[(2 * (row - 30) + 5 + dr) * WIDTH + 2 * (column - 120) + 5 + dc] = 255;
    }
  });
  const reference = preprocessRGBA(transparentBlackInk(small), WIDTH, HEIGHT);
  const moved = preprocessRGBA(transparentBlackInk(large), WIDTH, HEIGHT);
  const worst = maxDifference(moved, reference);
  assert.ok(worst <= 1, `largest difference ${worst} grey levels`);
});

test("sizes that do not match are refused", () => {
  assert.throws(() => inkFromRGBA(new Uint8Array(12), 2, 2), RangeError);
  assert.throws(() => toMnist(new Float32Array(3), 2, 2), RangeError);
});

const goldenFiles = readdirSync(GOLDEN_DIR).filter((file) => file.endsWith(".json")).sort();

test("the golden files are there", () => {
  assert.ok(goldenFiles.length >= 8, `${goldenFiles.length} golden files`);
});

for (const file of goldenFiles) {
  test(`golden ${file}: within 1 grey level of Python on every pixel`, () => {
    const golden = loadGolden(file);
    const result = preprocessRGBA(golden.rgba, golden.width, golden.height);
    if (golden.expected === null) {
      assert.equal(result, null);
      return;
    }
    assert.equal(result.length, golden.expected.length);
    const worst = maxDifference(result, golden.expected);
    assert.ok(worst <= 1, `largest difference ${worst} grey levels`);
  });
}
