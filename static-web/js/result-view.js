/**
 * The result card: empty, waiting, an answer (the digit, how sure, all ten probabilities, the
 * 28x28 image the model saw, the model version and the round trip) or an error. Every answer
 * and error is also put into words for screen readers.
 *
 * @module result-view
 */

import { FIELD_SIZE } from "./preprocess.js";

/** Below this confidence the answer is shown as "not sure", with the runner-up. */
export const SURE_FROM = 0.8;

const percent = (value) => `${(value * 100).toFixed(1)} %`;

export class ResultView {
  #root;
  #parts;
  #bars;

  /** @param {HTMLElement} root the result card (#result) */
  constructor(root) {
    this.#root = root;
    const part = (selector) => root.querySelector(selector);
    this.#parts = {
      digit: part("#digit"),
      confidence: part("#confidence"),
      meter: part(".meter-fill"),
      alternative: part("#alternative"),
      modelInput: part("#model-input"),
      modelVersion: part("#model-version"),
      roundTrip: part("#round-trip"),
      errorMessage: part("#error-message"),
      retry: part("#retry"),
      announcement: part("#announcement"),
    };
    this.#bars = this.#buildBars(part("#probabilities"));
  }

  showEmpty() {
    this.#setState("empty");
    this.#parts.errorMessage.textContent = "";
    this.#announce("");
  }

  showPending() {
    this.#root.setAttribute("aria-busy", "true");
  }

  /**
   * @param {import("./api-client.js").Answer} answer
   * @param {Float32Array} pixels what was sent: the model's 28x28 input
   */
  showAnswer(answer, pixels) {
    const { digit, confidence, probabilities, modelVersion, roundTripMs } = answer;
    const ranked = probabilities.map((p, d) => [d, p]).sort((a, b) => b[1] - a[1]);
    const [second, secondProbability] = ranked[1];
    const sure = confidence >= SURE_FROM;
    const parts = this.#parts;
    parts.digit.textContent = String(digit);
    parts.confidence.textContent = sure ? `${percent(confidence)} sure` : "Not sure";
    parts.meter.style.setProperty("--p", String(confidence));
    const maybe =
      `Maybe ${digit} (${percent(confidence)}) ` + `or ${second} (${percent(secondProbability)}).`;
    parts.alternative.textContent = sure
      ? `Next best: ${second} (${percent(secondProbability)})`
      : maybe;
    this.#root.dataset.sure = sure ? "yes" : "no";
    this.#bars.forEach(({ item, fill, value }, d) => {
      fill.style.setProperty("--p", String(probabilities[d]));
      value.textContent = percent(probabilities[d]);
      item.toggleAttribute("data-top", d === digit);
    });
    drawModelInput(parts.modelInput, pixels);
    parts.modelVersion.textContent = modelVersion;
    parts.roundTrip.textContent = `${Math.round(roundTripMs)} ms`;
    parts.errorMessage.textContent = "";
    this.#setState("result");
    this.#announce(sure ? `It's a ${digit}, ${percent(confidence)} sure.` : `Not sure. ${maybe}`);
  }

  /**
   * @param {string} message for people; role="alert" reads it out
   * @param {{canRetry?: boolean}} [options] whether "Try again" could help
   */
  showError(message, { canRetry = true } = {}) {
    this.#setState("error");
    this.#parts.retry.hidden = !canRetry;
    this.#parts.errorMessage.textContent = message;
  }

  #setState(state) {
    this.#root.dataset.state = state;
    this.#root.removeAttribute("aria-busy");
  }

  #announce(text) {
    this.#parts.announcement.textContent = text;
  }

  #buildBars(list) {
    return Array.from({ length: 10 }, (_, d) => {
      const item = document.createElement("li");
      const label = Object.assign(document.createElement("span"), {
        className: "bar-label",
        textContent: String(d),
      });
      const bar = Object.assign(document.createElement("span"), { className: "bar" });
      const fill = Object.assign(document.createElement("span"), { className: "bar-fill" });
      const value = Object.assign(document.createElement("span"), { className: "bar-value" });
      bar.append(fill);
      item.append(label, bar, value);
      list.append(item);
      return { item, fill, value };
    });
  }
}

/** The model's input as it sees it: white ink (255) on black (0), one canvas pixel each. */
function drawModelInput(canvas, pixels) {
  const context = canvas.getContext("2d");
  const image = context.createImageData(FIELD_SIZE, FIELD_SIZE);
  pixels.forEach((value, i) => {
    const grey = Math.round(value);
    image.data.set([grey, grey, grey, 255], i * 4);
  });
  context.putImageData(image, 0, 0);
}
