/**
 * The feedback API: POST {apiBase}/feedback with a correction of a wrong answer (the pixels
 * that were sent to /predict, the model's answer, the right answer and the model version; an
 * answer is a digit or NOT_DIGIT), and every way it can fail turned into a FeedbackError with a
 * message for people.
 *
 * @module feedback
 */

import { TIMEOUT_MS } from "./api-client.js";

/** docs/contracts.md section 4: the answer "this is not a digit", as `predicted` or `label`. */
export const NOT_DIGIT = "not_digit";

/** The correction was not stored; the message is for people. */
export class FeedbackError extends Error {
  name = "FeedbackError";
}

/**
 * @typedef {object} Correction
 * @property {Float32Array | number[]} pixels exactly what was sent to /predict for the answer
 * @property {number | "not_digit"} predicted the model's answer: its digit, or NOT_DIGIT when it
 *   said the drawing is no digit
 * @property {number | "not_digit"} label the right answer, as the person picked it: a digit, or
 *   NOT_DIGIT
 * @property {string} modelVersion the answer's model_version
 */

/**
 * The request body (docs/contracts.md section 4): every field, nothing else. The pixels go as
 * /predict got them, so the item is the very image the model saw.
 * @param {Correction} correction
 */
export function feedbackBody({ pixels, predicted, label, modelVersion }) {
  return {
    pixels: Array.from(pixels),
    predicted,
    label,
    model_version: modelVersion,
  };
}

/**
 * @param {string} apiBase e.g. "/api"
 * @param {Correction} correction
 * @returns {Promise<string>} the stored item's id
 */
export async function sendCorrection(apiBase, correction) {
  let response;
  try {
    response = await fetch(`${apiBase}/feedback`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(feedbackBody(correction)),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    throw new FeedbackError(
      error.name === "TimeoutError"
        ? `Not saved: the service did not answer within ${TIMEOUT_MS / 1000} seconds.`
        : "Not saved: the service cannot be reached. Check your connection and try again.",
    );
  }
  if (!response.ok) {
    const detail = await problemDetail(response);
    throw new FeedbackError(failureMessage(response.status, detail, response.headers));
  }
  try {
    return (await response.json()).item ?? "";
  } catch {
    return ""; // stored all the same: a 2xx is the service's word for it
  }
}

/**
 * What a refusal means for the person: the service's own words (problem+json `detail`) where
 * it gave them, and whether trying again can help.
 * @param {number} status
 * @param {string} detail "" when the body had none
 * @param {Headers} [headers] for Retry-After
 */
export function failureMessage(status, detail, headers) {
  if (status === 429 || status === 503) {
    const fallback =
      status === 429 ? "too many corrections were sent from here" : "it cannot be stored now";
    return `${sentence(`Not saved: ${detail || fallback}`)} ${tryAgainLater(headers)}`;
  }
  if (status >= 500) {
    return `Not saved: the service had a problem (${status}). Try again in a moment.`;
  }
  return sentence(`Not saved (${status})${detail ? `: ${detail}` : ""}`);
}

/** "Try again later.", with how much later when Retry-After says so in seconds. */
function tryAgainLater(headers) {
  const seconds = Number.parseInt(headers?.get("Retry-After") ?? "", 10);
  if (!(seconds > 0)) return "Try again later.";
  return `Try again later (in ${seconds} second${seconds === 1 ? "" : "s"}).`;
}

/** Ends the text with a full stop unless it already ends a sentence. */
function sentence(text) {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

async function problemDetail(response) {
  try {
    const problem = await response.json();
    return typeof problem.detail === "string" ? problem.detail.trim() : "";
  } catch {
    return "";
  }
}
