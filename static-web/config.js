/**
 * Where the site finds the API. Same-origin "/api" by default, as `make run` serves it.
 * Deployments use no linked backend: infra/hooks/stage_site.py stages a copy of the site with the
 * function app's URL here and its origin in the Content-Security-Policy's connect-src, and the
 * function app's CORS allows the site's origin.
 */
export const apiBase = "/api";
