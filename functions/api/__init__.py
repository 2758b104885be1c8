"""The HTTP surface: the handlers, their codecs and blueprints, the errors mapped to statuses, and
the OpenAPI document."""

# The API's name and version: the OpenAPI document's `info`, and the V2 server metadata. Here,
# not in openapi/, so that the V2 blueprint does not load the document's module to declare.
API_TITLE = "Digit recognition API"
API_VERSION = "1.1.0"  # 1.1: is_digit in every answer, "not_digit" in corrections
