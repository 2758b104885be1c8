"""The OpenAPI 3.1 document of the HTTP API (contracts.md section 4), served at /api/openapi.json.

- `parts`: the small builders both surfaces use (references, responses, operations, schemas).
- `digit_api`: our own API: /predict, /feedback, /health, /models, /openapi.json.
- `v2_api`: the Open Inference Protocol (KServe V2) under /v2.
- `document`: the whole document, `openapi_document()`.
"""
