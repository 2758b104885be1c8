/**
 * Drawing from the keyboard: while the pad has focus, the arrow keys move a pen cursor
 * (Shift: bigger steps) and Space or Enter puts the pen down or lifts it. A lifted pen ends
 * the stroke, which asks for a prediction like any other stroke.
 *
 * @module keyboard-pen
 */

const STEP = 1 / 40; // of the pad's size
const BIG_STEP = 1 / 8;
const MOVES = {
  ArrowLeft: [-1, 0],
  ArrowRight: [1, 0],
  ArrowUp: [0, -1],
  ArrowDown: [0, 1],
};

export class KeyboardPen {
  #pad;
  #cursor;
  #position = { x: 0.5, y: 0.5 };

  /**
   * @param {import("./drawing-pad.js").DrawingPad} pad
   * @param {HTMLElement} surface the focusable element that takes the keys (the canvas)
   * @param {HTMLElement} cursor shows where the pen is
   */
  constructor(pad, surface, cursor) {
    this.#pad = pad;
    this.#cursor = cursor;
    surface.addEventListener("keydown", (event) => this.#onKey(event));
    surface.addEventListener("blur", () => this.#lift());
    pad.addEventListener("change", () => this.#show());
    this.#show();
  }

  #onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const move = MOVES[event.key];
    if (move) {
      this.#moveBy(move, event.shiftKey ? BIG_STEP : STEP);
    } else if (event.key === " " || event.key === "Enter") {
      if (this.#pad.isDrawing) this.#lift();
      else this.#pad.beginStroke({ ...this.#position });
    } else {
      return;
    }
    event.preventDefault(); // arrows and Space would scroll the page
    this.#show();
  }

  #moveBy([dx, dy], step) {
    const clamp = (value) => Math.min(1, Math.max(0, value));
    const { x, y } = this.#position;
    this.#position = { x: clamp(x + dx * step), y: clamp(y + dy * step) };
    if (this.#pad.isDrawing) this.#pad.extendStroke([{ ...this.#position }]);
  }

  #lift() {
    this.#pad.endStroke();
    this.#show();
  }

  #show() {
    this.#cursor.style.setProperty("--x", String(this.#position.x));
    this.#cursor.style.setProperty("--y", String(this.#position.y));
    this.#cursor.dataset.pen = this.#pad.isDrawing ? "down" : "up";
  }
}
