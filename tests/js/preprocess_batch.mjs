// Runs the site's preprocessing (static-web/js/preprocess.js) over a stream of canvases, for
// tests/site/test_site_accuracy.py.
//
//   stdin:  uint32 LE width, uint32 LE height, then any number of canvases, each
//           width * height * 4 bytes of RGBA (canvas ImageData layout).
//   stdout: for each canvas, 784 float32 LE (the 28x28 model input, row-major), or 784 NaN
//           when the preprocessing finds nothing drawn.
//
// Streaming rather than files: two thousand 280x280 canvases are over 600 MB.

import { once } from "node:events";

import { FIELD_SIZE, preprocessRGBA } from "../../static-web/js/preprocess.js";

const HEADER_BYTES = 8;
const EMPTY = new Float32Array(FIELD_SIZE * FIELD_SIZE).fill(Number.NaN);

async function* frames(input) {
  let header = Buffer.alloc(0);
  let frame = null;
  let filled = 0;
  for await (const chunk of input) {
    let offset = 0;
    if (frame === null) {
      header = Buffer.concat([header, chunk]);
      if (header.length < HEADER_BYTES) continue;
      const [width, height] = [header.readUInt32LE(0), header.readUInt32LE(4)];
      frame = { width, height, data: new Uint8ClampedArray(width * height * 4) };
      offset = HEADER_BYTES - (header.length - chunk.length);
    }
    while (offset < chunk.length) {
      const taken = Math.min(chunk.length - offset, frame.data.length - filled);
      frame.data.set(chunk.subarray(offset, offset + taken), filled);
      [offset, filled] = [offset + taken, filled + taken];
      if (filled === frame.data.length) {
        yield frame;
        filled = 0;
      }
    }
  }
  if (filled !== 0) throw new Error(`input ended inside a canvas (${filled} bytes)`);
}

for await (const { width, height, data } of frames(process.stdin)) {
  const result = preprocessRGBA(data, width, height) ?? EMPTY;
  const bytes = Buffer.from(result.buffer, result.byteOffset, result.byteLength);
  if (!process.stdout.write(bytes)) await once(process.stdout, "drain");
}
