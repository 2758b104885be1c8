/**
 * The site's wiring: the drawing pad and uploads feed the preprocessing, the preprocessing
 * feeds the API, the API's answers feed the result card and its offer to correct them.
 *
 * @module app
 */

import { apiBase } from "../config.js";
import { requestPrediction } from "./api-client.js";
import { AnswerCorrection } from "./correction.js";
import { DrawingPad } from "./drawing-pad.js";
import { sendCorrection } from "./feedback.js";
import { FeedbackView } from "./feedback-view.js";
import { KeyboardPen } from "./keyboard-pen.js";
import { LatestPrediction } from "./predictions.js";
import { preprocessRGBA } from "./preprocess.js";
import { ResultView } from "./result-view.js";
import { acceptPictures, readPicture } from "./upload.js";

const element = (selector) => document.querySelector(selector);
const canvas = element("#pad-canvas");
const buttons = { undo: element("#undo"), clear: element("#clear") };
const caption = element("#pad-caption");

const pad = new DrawingPad(canvas, element("#pad-picture"));
new KeyboardPen(pad, canvas, element("#pad-cursor"));
const view = new ResultView(element("#result"));
const feedbackView = new FeedbackView(
  element("#feedback"),
  (label) => correction.choose(label),
  (shown) => correction.showDigits(shown),
);
const correction = new AnswerCorrection(
  (chosen) => sendCorrection(apiBase, chosen),
  (status) => feedbackView.render(status),
);

// The uploaded picture's model input, while the pad shows that picture.
let picture = { name: "", pixels: null };

/** The model input for what the pad shows now, or null when there is nothing to read. */
function currentPixels() {
  if (pad.hasPicture) return picture.pixels;
  const { data, width, height } = pad.imageData();
  return preprocessRGBA(data, width, height);
}

const predictions = new LatestPrediction((pixels) => requestPrediction(apiBase, pixels), {
  onPending: () => {
    view.showPending();
    correction.pause();
  },
  onAnswer: (answer, pixels) => {
    view.showAnswer(answer, pixels);
    // An upload's pixels are the browser's own preprocessing too: what /predict got.
    correction.offer(answer, pixels);
  },
  onError: (error) => {
    view.showError(error.message);
    correction.withdraw();
  },
  onEmpty: () => {
    correction.withdraw();
    if (pad.hasPicture) {
      view.showError(`No digit found in “${picture.name}”.`, { canRetry: false });
    } else {
      view.showEmpty();
    }
  },
});

function updateControls() {
  // aria-disabled rather than disabled: a button that focus is on stays focusable.
  for (const button of Object.values(buttons)) button.setAttribute("aria-disabled", pad.isEmpty);
  caption.hidden = !pad.hasPicture;
  caption.textContent = `Reading “${picture.name}”. Draw on the pad to start over.`;
}

function undo() {
  if (!pad.isEmpty) pad.undo();
}

function clear() {
  if (pad.isEmpty) return;
  pad.clear();
  predictions.now(currentPixels); // no need to wait: empty is empty
}

async function readUploadedPicture(file) {
  try {
    const { data, width, height } = await readPicture(file);
    picture = { name: file.name, pixels: preprocessRGBA(data, width, height) };
  } catch (error) {
    view.showError(error.message, { canRetry: false });
    correction.withdraw();
    return;
  }
  pad.showPicture(URL.createObjectURL(file));
  predictions.now(currentPixels);
}

pad.addEventListener("strokestart", () => {
  predictions.postpone();
  updateControls();
});
pad.addEventListener("change", () => {
  updateControls();
  predictions.schedule(currentPixels);
});

buttons.undo.addEventListener("click", undo);
buttons.clear.addEventListener("click", clear);
element("#retry").addEventListener("click", () => predictions.now(currentPixels));
canvas.addEventListener("keydown", (event) => {
  if (event.key === "Delete" || event.key === "Backspace") {
    event.preventDefault();
    clear();
  }
});
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  }
});

acceptPictures({
  button: element("#upload"),
  input: element("#upload-input"),
  dropZone: element("#pad"),
  onFile: readUploadedPicture,
});
updateControls();
