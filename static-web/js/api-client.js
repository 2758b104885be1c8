/**
 * The prediction API: POST {apiBase}/predict with {"pixels": [784 numbers]}, and every way it
 * can fail turned into a PredictionError with a message for people.
 *
 * @module api-client
 */

export const TIMEOUT_MS = 15000;

/** The API unreachable or too slow, a 4xx or a 5xx; the message is for people. */
export class PredictionError extends Error {
  name = "PredictionError";
}

/**
 * @typedef {object} Answer
 * @property {number} digit the closest digit
 * @property {boolean} isDigit false when the model says the drawing is not a digit at all
 * @property {number} confidence 0..1
 * @property {number[]} probabilities ten, summing to 1
 * @property {string} modelVersion
 * @property {number} roundTripMs
 */

/**
 * @param {string} apiBase e.g. "/api"
 * @param {Float32Array} pixels the 28x28 model input, 0..255
 * @returns {Promise<Answer>}
 */
export async function requestPrediction(apiBase, pixels) {
  const started = performance.now();
  let response;
  try {
    response = await fetch(`${apiBase}/predict`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ pixels: Array.from(pixels) }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    const message =
      error.name === "TimeoutError"
        ? `The recognition service did not answer within ${TIMEOUT_MS / 1000} seconds.`
        : "The recognition service cannot be reached. Check your connection and try again.";
    throw new PredictionError(message);
  }
  if (!response.ok) throw await errorOf(response);
  let body;
  try {
    body = await response.json();
  } catch {
    throw new PredictionError("The recognition service sent an answer that is not JSON.");
  }
  return {
    digit: body.prediction,
    // An answer without "is_digit" (an older API) is a digit's.
    isDigit: body.is_digit !== false,
    confidence: body.confidence,
    probabilities: body.probabilities,
    modelVersion: body.model_version ?? response.headers.get("X-Model-Version") ?? "unknown",
    roundTripMs: performance.now() - started,
  };
}

/** A 4xx says what was wrong (its problem+json detail); a 5xx is the service's own failure. */
async function errorOf(response) {
  if (response.status >= 500) {
    return new PredictionError(
      `The recognition service had a problem (${response.status}). Try again in a moment.`,
    );
  }
  const detail = await problemDetail(response);
  const reason = detail ? `: ${detail}` : ".";
  return new PredictionError(
    `The recognition service refused the request (${response.status})${reason}`,
  );
}

async function problemDetail(response) {
  try {
    const problem = await response.json();
    return typeof problem.detail === "string" ? problem.detail : "";
  } catch {
    return "";
  }
}
