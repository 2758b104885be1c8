/**
 * From a drawing or an uploaded picture to the model's 28x28 input, as MNIST itself was made.
 *
 * The twin of functions/preprocessing/mnist.py: same steps, constants, rounding and summation
 * order, checked against the golden files in tests/golden/preprocessing. No DOM access, so it
 * runs in the browser and in node alike. The steps:
 *
 * 1. Ink as 0..1 (inkFromRGBA): when the picture's background is transparent (the median
 *    alpha of its border under one half: the pad's transparent canvas) the alpha channel is the
 *    ink, with the border's level mapped to 0; otherwise the luminance, inverted when the
 *    picture's border is light, with the border's level mapped to 0 (grey paper is background).
 *    A stray translucent pixel in an opaque picture changes nothing. A CSS background never
 *    enters: only pixels do.
 * 2. Nothing above EMPTY_THRESHOLD -> null (empty: send no request).
 * 3. Crop to the bounding box of the ink above EMPTY_THRESHOLD.
 * 4. Scale the longer side to 20 px, keeping the aspect ratio, by exact area averaging
 *    (not the canvas's own smoothing, which differs between browsers).
 * 5. Paste into a 28x28 field at offset floor((28 - size) / 2).
 * 6. Shift by whole pixels so the centre of mass lands on (14, 14) in pixel-index coordinates.
 * 7. Scale to 0..255.
 *
 * Arithmetic is in doubles (as numpy's float64); the ink is a Float32Array, as in Python.
 *
 * @module preprocess
 */

export const FIELD_SIZE = 28;
export const BOX_SIZE = 20; // MNIST fits each digit into a 20x20 box inside the 28x28 field
export const CENTRE = 14; // where the centre of mass goes, in pixel-index coordinates
export const EMPTY_THRESHOLD = 0.05; // ink at or below this is paper: "empty" and the bounding box
export const LIGHT_BACKGROUND = 0.5; // border luminance at or above this: dark ink on light paper
export const TRANSPARENT_BACKGROUND = 0.5; // border opacity (median alpha / 255) below this: alpha
const LUMA_WEIGHTS = [0.299, 0.587, 0.114]; // Rec. 601

/**
 * RGBA pixels (canvas ImageData.data layout) -> ink in 0..1, one value per pixel.
 * @param {Uint8ClampedArray|Uint8Array} data
 * @param {number} width
 * @param {number} height
 * @returns {Float32Array}
 */
export function inkFromRGBA(data, width, height) {
  checkSize(data.length, width * height * 4, "RGBA bytes");
  const opacity = new Float64Array(width * height);
  for (let i = 0; i < opacity.length; i += 1) opacity[i] = data[i * 4 + 3] / 255;
  if (median(border(opacity, width, height)) < TRANSPARENT_BACKGROUND) {
    return inkFromAlpha(opacity, width, height);
  }
  return inkFromLuminance(data, width, height);
}

/** Opacity is the ink, whatever the colour; the background's own opacity counts as none. */
function inkFromAlpha(opacity, width, height) {
  const background = median(border(opacity, width, height));
  const ink = new Float32Array(opacity.length);
  for (let i = 0; i < ink.length; i += 1) {
    ink[i] = clip01((opacity[i] - background) / (1 - background));
  }
  return ink;
}

/**
 * Ink from an opaque picture; the background level is the median luminance of its border.
 * On a light background the ink is the darkness (1 - L), on a dark one the lightness (L);
 * the background's own ink level is subtracted and the rest stretched back to 0..1.
 */
function inkFromLuminance(data, width, height) {
  const luminance = new Float64Array(width * height);
  for (let i = 0; i < luminance.length; i += 1) {
    const [red, green, blue] = [data[i * 4], data[i * 4 + 1], data[i * 4 + 2]];
    luminance[i] = (LUMA_WEIGHTS[0] * red + LUMA_WEIGHTS[1] * green + LUMA_WEIGHTS[2] * blue) / 255;
  }
  const background = median(border(luminance, width, height));
  const light = background >= LIGHT_BACKGROUND;
  const backgroundInk = light ? 1 - background : background;
  const ink = new Float32Array(luminance.length);
  for (let i = 0; i < ink.length; i += 1) {
    const raw = light ? 1 - luminance[i] : luminance[i];
    ink[i] = clip01((raw - backgroundInk) / (1 - backgroundInk));
  }
  return ink;
}

/** The pixels of the outermost rows and columns, each once. */
function border(values, width, height) {
  const result = [];
  for (let row = 0; row < height; row += 1) {
    const edgeRow = row === 0 || row === height - 1;
    for (let column = 0; column < width; column += 1) {
      const edge = edgeRow || column === 0 || column === width - 1;
      if (edge) result.push(values[row * width + column]);
    }
  }
  return result;
}

function median(values) {
  const ordered = Float64Array.from(values).sort();
  const middle = Math.floor(ordered.length / 2);
  if (ordered.length % 2) return ordered[middle];
  return (ordered[middle - 1] + ordered[middle]) / 2;
}

/**
 * Ink (row-major, 0..1) -> 28x28 values in 0..255 centred as MNIST, or null when nothing is drawn.
 * @param {Float32Array|Float64Array|number[]} ink
 * @param {number} width
 * @param {number} height
 * @returns {Float32Array|null} 784 values, row-major
 */
export function toMnist(ink, width, height) {
  checkSize(ink.length, width * height, "ink values");
  const box = inkBoundingBox(ink, width, height);
  if (box === null) return null;
  const digit = fitInBox(crop(ink, width, box));
  const field = shiftCentreOfMass(pasteCentred(digit));
  const out = new Float32Array(FIELD_SIZE * FIELD_SIZE);
  for (let i = 0; i < out.length; i += 1) out[i] = field[i] * 255;
  return out;
}

/**
 * RGBA pixels -> 28x28 model input (Float32Array, 0..255), or null when nothing is drawn.
 * @param {Uint8ClampedArray|Uint8Array} data
 * @param {number} width
 * @param {number} height
 */
export function preprocessRGBA(data, width, height) {
  return toMnist(inkFromRGBA(data, width, height), width, height);
}

function inkBoundingBox(ink, width, height) {
  let [top, bottom, left, right] = [height, -1, width, -1];
  for (let row = 0; row < height; row += 1) {
    for (let column = 0; column < width; column += 1) {
      if (ink[row * width + column] > EMPTY_THRESHOLD) {
        top = Math.min(top, row);
        bottom = Math.max(bottom, row);
        left = Math.min(left, column);
        right = Math.max(right, column);
      }
    }
  }
  return bottom < 0 ? null : { top, bottom, left, right };
}

/** A matrix: row-major doubles with its shape. */
function crop(ink, width, { top, bottom, left, right }) {
  const rows = bottom - top + 1;
  const columns = right - left + 1;
  const values = new Float64Array(rows * columns);
  for (let row = 0; row < rows; row += 1) {
    for (let column = 0; column < columns; column += 1) {
      values[row * columns + column] = ink[(top + row) * width + left + column];
    }
  }
  return { values, rows, columns };
}

/** Scale so the longer side is BOX_SIZE, the shorter in proportion (at least 1 px). */
function fitInBox(matrix) {
  const longer = Math.max(matrix.rows, matrix.columns);
  const newRows = Math.max(1, roundHalfUp((matrix.rows * BOX_SIZE) / longer));
  const newColumns = Math.max(1, roundHalfUp((matrix.columns * BOX_SIZE) / longer));
  const rowsScaled = areaAverageRows(matrix, newRows);
  return transpose(areaAverageRows(transpose(rowsScaled), newColumns));
}

/**
 * Resample the rows to newRows by exact area averaging (a box filter): output row i covers
 * source rows [i * n / newRows, (i + 1) * n / newRows), each source row weighted by its overlap.
 */
function areaAverageRows({ values, rows, columns }, newRows) {
  const result = new Float64Array(newRows * columns);
  for (let i = 0; i < newRows; i += 1) {
    const start = (i * rows) / newRows;
    const end = ((i + 1) * rows) / newRows;
    const total = new Float64Array(columns);
    for (let k = Math.floor(start); k < Math.min(Math.ceil(end), rows); k += 1) {
      const overlap = Math.min(k + 1, end) - Math.max(k, start);
      for (let c = 0; c < columns; c += 1) total[c] = total[c] + overlap * values[k * columns + c];
    }
    for (let c = 0; c < columns; c += 1) result[i * columns + c] = total[c] / (end - start);
  }
  return { values: result, rows: newRows, columns };
}

function transpose({ values, rows, columns }) {
  const result = new Float64Array(rows * columns);
  for (let row = 0; row < rows; row += 1) {
    for (let column = 0; column < columns; column += 1) {
      result[column * rows + row] = values[row * columns + column];
    }
  }
  return { values: result, rows: columns, columns: rows };
}

function pasteCentred({ values, rows, columns }) {
  const top = Math.floor((FIELD_SIZE - rows) / 2);
  const left = Math.floor((FIELD_SIZE - columns) / 2);
  const field = new Float64Array(FIELD_SIZE * FIELD_SIZE);
  for (let row = 0; row < rows; row += 1) {
    for (let column = 0; column < columns; column += 1) {
      field[(top + row) * FIELD_SIZE + left + column] = values[row * columns + column];
    }
  }
  return field;
}

/** Move the field by whole pixels so its centre of mass lands on (CENTRE, CENTRE). */
function shiftCentreOfMass(field) {
  // Sums run row-major, left to right, as Python's running sum does.
  let [mass, rowMoment, columnMoment] = [0, 0, 0];
  for (let row = 0; row < FIELD_SIZE; row += 1) {
    for (let column = 0; column < FIELD_SIZE; column += 1) {
      const value = field[row * FIELD_SIZE + column];
      mass += value;
      rowMoment += row * value;
      columnMoment += column * value;
    }
  }
  const down = roundHalfUp(CENTRE - rowMoment / mass);
  const right = roundHalfUp(CENTRE - columnMoment / mass);
  return shifted(field, down, right);
}

/** The field moved by whole pixels; what leaves it is dropped, what enters is 0. */
function shifted(field, down, right) {
  const moved = new Float64Array(FIELD_SIZE * FIELD_SIZE);
  for (let row = 0; row < FIELD_SIZE; row += 1) {
    for (let column = 0; column < FIELD_SIZE; column += 1) {
      const [toRow, toColumn] = [row + down, column + right];
      if (toRow >= 0 && toRow < FIELD_SIZE && toColumn >= 0 && toColumn < FIELD_SIZE) {
        moved[toRow * FIELD_SIZE + toColumn] = field[row * FIELD_SIZE + column];
      }
    }
  }
  return moved;
}

/** floor(x + 0.5), as in Python; Math.round differs just below halves (0.49999999999999994). */
function roundHalfUp(value) {
  return Math.floor(value + 0.5);
}

function clip01(value) {
  return Math.min(1, Math.max(0, value));
}

function checkSize(actual, expected, what) {
  if (actual !== expected) throw new RangeError(`expected ${expected} ${what}, got ${actual}`);
}
