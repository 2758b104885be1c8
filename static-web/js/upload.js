/**
 * Pictures in: a file picker and drag-and-drop anywhere on the page, and a picture file
 * turned into RGBA pixels for the same preprocessing as the drawing.
 *
 * @module upload
 */

/**
 * Larger pictures are scaled down (by the browser) to about this many pixels first: the
 * preprocessing's loops take seconds on a 12 MP photo, and the digit ends up 20 px tall anyway.
 */
export const MAX_PICTURE_PIXELS = 4_000_000;

/** A file that is not a picture the browser can read; the message says so for people. */
export class PictureError extends Error {
  name = "PictureError";
}

/**
 * @param {File} file
 * @returns {Promise<ImageData>} the picture's pixels (RGBA)
 */
export async function readPicture(file) {
  if (!file.type.startsWith("image/")) {
    throw new PictureError(`“${file.name}” is not a picture. Try a PNG or JPEG.`);
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new PictureError(`“${file.name}” could not be read as a picture.`);
  }
  const scale = Math.min(1, Math.sqrt(MAX_PICTURE_PIXELS / (bitmap.width * bitmap.height)));
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  const context = new OffscreenCanvas(width, height).getContext("2d");
  context.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  return context.getImageData(0, 0, width, height);
}

/**
 * Call onFile with each picture chosen in the picker or dropped on the page.
 * @param {{
 *   button: HTMLElement, input: HTMLInputElement, dropZone: HTMLElement,
 *   onFile: (file: File) => void,
 * }} parts dropZone is highlighted (data-dropping) while files are dragged over the page
 */
export function acceptPictures({ button, input, dropZone, onFile }) {
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    const [file] = input.files;
    input.value = ""; // so that choosing the same file again is a change too
    if (file) onFile(file);
  });

  // Counted, because dragenter and dragleave fire for every element crossed on the way.
  let dragDepth = 0;
  const carriesFiles = (event) => event.dataTransfer?.types.includes("Files");
  const highlight = (on) => dropZone.toggleAttribute("data-dropping", on);
  document.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    dragDepth += 1;
    highlight(true);
  });
  document.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    highlight(dragDepth > 0);
  });
  document.addEventListener("dragover", (event) => {
    if (carriesFiles(event)) event.preventDefault(); // allows the drop
  });
  document.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // the browser would otherwise open the file instead of the site
    dragDepth = 0;
    highlight(false);
    const [file] = event.dataTransfer.files;
    if (file) onFile(file);
  });
}
