/**
 * When to ask for a prediction, and which answer to show: a short pause after the drawing
 * changes (so a stroke drawn in quick succession makes one request), no request for an empty
 * drawing, and only the answer to the newest request (a late answer to an older drawing is
 * dropped). No DOM access: the site passes in how to predict and what to do with the outcome.
 *
 * @module predictions
 */

export const DEBOUNCE_MS = 250;

export class LatestPrediction {
  #predict;
  #handlers;
  #debounceMs;
  #timer = null;
  #generation = 0; // bumped by every request and every empty drawing; answers carry theirs

  /**
   * @param {(pixels: Float32Array) => Promise<object>} predict
   * @param {{
   *   onPending: (pixels: Float32Array) => void,
   *   onAnswer: (answer: object, pixels: Float32Array) => void,
   *   onError: (error: Error, pixels: Float32Array) => void,
   *   onEmpty: () => void,
   * }} handlers
   * @param {{debounceMs?: number}} [options]
   */
  constructor(predict, handlers, { debounceMs = DEBOUNCE_MS } = {}) {
    this.#predict = predict;
    this.#handlers = handlers;
    this.#debounceMs = debounceMs;
  }

  /**
   * Predict after a pause; a newer call within the pause replaces this one.
   * @param {() => Float32Array | null} readPixels the model input now, or null when empty
   */
  schedule(readPixels) {
    this.postpone();
    this.#timer = setTimeout(() => this.now(readPixels), this.#debounceMs);
  }

  /** Forget a scheduled prediction (a new stroke has begun); answers in flight still count. */
  postpone() {
    clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** @param {() => Float32Array | null} readPixels */
  async now(readPixels) {
    this.postpone();
    this.#generation += 1;
    const generation = this.#generation;
    const pixels = readPixels();
    if (pixels === null) {
      this.#handlers.onEmpty();
      return;
    }
    this.#handlers.onPending(pixels);
    try {
      const answer = await this.#predict(pixels);
      if (generation === this.#generation) this.#handlers.onAnswer(answer, pixels);
    } catch (error) {
      if (generation === this.#generation) this.#handlers.onError(error, pixels);
    }
  }
}
