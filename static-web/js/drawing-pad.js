/**
 * The drawing pad: strokes of ink on a transparent canvas, from mouse, touch and pen.
 *
 * Strokes are kept as points in 0..1 of the pad's width and height, so they are redrawn
 * sharply at any size and device pixel ratio; the canvas's backing store always has one pixel
 * per device pixel. The ink is in the alpha channel over transparency: the preprocessing reads
 * alpha, whatever colour the pen or the paper behind the canvas has on screen.
 *
 * Events: "strokestart" when a stroke begins, "change" whenever the drawing changed (a stroke
 * ended, undo, clear, a picture shown).
 *
 * @module drawing-pad
 */

/** Pen width as a fraction of the pad's width, so a stroke looks the same on any screen. */
export const PEN_WIDTH_FRACTION = 0.06;

export class DrawingPad extends EventTarget {
  #canvas;
  #context;
  #inkColour;
  #picture;
  #strokes = []; // each an array of {x, y} in 0..1
  #activeStroke = null;
  #activePointer = null;
  #redrawQueued = false;

  /**
   * @param {HTMLCanvasElement} canvas
   * @param {HTMLImageElement} picture an image layer under the canvas, for uploaded pictures
   */
  constructor(canvas, picture) {
    super();
    this.#canvas = canvas;
    this.#picture = picture;
    this.#context = canvas.getContext("2d", { willReadFrequently: true });
    this.#inkColour = getComputedStyle(canvas).getPropertyValue("--ink").trim() || "#000";
    this.#observeSize();
    this.#markEmptiness();
    canvas.addEventListener("pointerdown", (event) => this.#onPointerDown(event));
    canvas.addEventListener("pointermove", (event) => this.#onPointerMove(event));
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      canvas.addEventListener(type, (event) => this.#onPointerEnd(event));
    }
  }

  /** Nothing drawn and no picture shown. */
  get isEmpty() {
    return this.#strokes.length === 0 && !this.hasPicture;
  }

  get hasPicture() {
    return !this.#picture.hidden;
  }

  get isDrawing() {
    return this.#activeStroke !== null;
  }

  /** @param {{x: number, y: number}} point in 0..1 of the pad */
  beginStroke(point) {
    this.#hidePicture();
    this.#activeStroke = [point];
    this.#strokes.push(this.#activeStroke);
    this.#markEmptiness();
    this.#queueRedraw();
    this.dispatchEvent(new Event("strokestart"));
  }

  /** @param {{x: number, y: number}[]} points */
  extendStroke(points) {
    if (this.#activeStroke === null) return;
    this.#activeStroke.push(...points);
    this.#queueRedraw();
  }

  endStroke() {
    if (this.#activeStroke === null) return;
    this.#activeStroke = null;
    this.#activePointer = null;
    this.#changed();
  }

  /** Remove the last stroke, or the picture once no stroke is left. */
  undo() {
    if (this.isDrawing) return;
    if (this.#strokes.length > 0) this.#strokes.pop();
    else this.#hidePicture();
    this.#changed();
  }

  clear() {
    this.#activeStroke = null;
    this.#activePointer = null;
    this.#strokes = [];
    this.#hidePicture();
    this.#changed();
  }

  /**
   * Show an uploaded picture in place of the drawing; the next stroke removes it.
   * @param {string} url an object URL the pad now owns (revoked when the picture goes)
   */
  showPicture(url) {
    this.#hidePicture();
    this.#strokes = [];
    this.#picture.src = url;
    this.#picture.hidden = false;
    this.#changed();
  }

  /** The canvas's pixels, one per device pixel (ImageData: RGBA, ink in alpha). */
  imageData() {
    const { width, height } = this.#canvas;
    return this.#context.getImageData(0, 0, width, height);
  }

  #onPointerDown(event) {
    if (!event.isPrimary || event.button !== 0 || this.isDrawing) return;
    event.preventDefault();
    this.#canvas.setPointerCapture(event.pointerId);
    this.#activePointer = event.pointerId;
    this.beginStroke(this.#pointOf(event));
  }

  #onPointerMove(event) {
    if (event.pointerId !== this.#activePointer) return;
    // Coalesced events: every sample the device gave since the last frame, for smooth curves.
    const samples = event.getCoalescedEvents?.() ?? [];
    const box = this.#canvas.getBoundingClientRect();
    this.extendStroke((samples.length ? samples : [event]).map((one) => this.#pointOf(one, box)));
  }

  #onPointerEnd(event) {
    if (event.pointerId === this.#activePointer) this.endStroke();
  }

  /** Client coordinates -> 0..1 of the canvas's box, whatever CSS scaling or pixel ratio. */
  #pointOf(event, box = this.#canvas.getBoundingClientRect()) {
    return { x: (event.clientX - box.left) / box.width, y: (event.clientY - box.top) / box.height };
  }

  /** Keep one backing-store pixel per device pixel, through resizes and pixel ratio changes. */
  #observeSize() {
    new ResizeObserver(() => this.#fitToBox()).observe(this.#canvas);
    const watchPixelRatio = () => {
      matchMedia(`(resolution: ${devicePixelRatio}dppx)`).addEventListener(
        "change",
        () => {
          this.#fitToBox();
          watchPixelRatio();
        },
        { once: true },
      );
    };
    watchPixelRatio();
  }

  #fitToBox() {
    const box = this.#canvas.getBoundingClientRect();
    const width = Math.round(box.width * devicePixelRatio);
    const height = Math.round(box.height * devicePixelRatio);
    if (width === this.#canvas.width && height === this.#canvas.height) return;
    [this.#canvas.width, this.#canvas.height] = [width, height];
    this.#redraw();
  }

  #hidePicture() {
    if (!this.hasPicture) return;
    URL.revokeObjectURL(this.#picture.src);
    this.#picture.hidden = true;
    this.#picture.removeAttribute("src");
  }

  #changed() {
    this.#markEmptiness();
    this.#redraw();
    this.dispatchEvent(new Event("change"));
  }

  /** data-empty on the pad's element, for the "draw here" hint. */
  #markEmptiness() {
    this.#canvas.parentElement.toggleAttribute("data-empty", this.isEmpty);
  }

  #queueRedraw() {
    if (this.#redrawQueued) return;
    this.#redrawQueued = true;
    requestAnimationFrame(() => {
      this.#redrawQueued = false;
      this.#redraw();
    });
  }

  #redraw() {
    const { width, height } = this.#canvas;
    const context = this.#context;
    context.clearRect(0, 0, width, height);
    const penWidth = PEN_WIDTH_FRACTION * width;
    context.strokeStyle = context.fillStyle = this.#inkColour;
    context.lineWidth = penWidth;
    context.lineCap = "round";
    context.lineJoin = "round";
    for (const stroke of this.#strokes) {
      const points = stroke.map(({ x, y }) => [x * width, y * height]);
      context.beginPath();
      if (points.length === 1) {
        context.arc(points[0][0], points[0][1], penWidth / 2, 0, 2 * Math.PI);
        context.fill();
        continue;
      }
      context.moveTo(...points[0]);
      for (const point of points.slice(1)) context.lineTo(...point);
      context.stroke();
    }
  }
}
