"""The HTTP surface: the blueprint, its responses and its OpenAPI document."""
