"""The HTTP surface: the blueprint, its responses and its OpenAPI document."""

# The API's name and version: the OpenAPI document's `info`, and the V2 server metadata. Here,
# not in openapi.py, so that the V2 blueprint does not load the document's module to declare.
API_TITLE = "Digit recognition API"
API_VERSION = "1.0.0"
