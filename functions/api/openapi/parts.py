"""The builders the OpenAPI document is written with: each says what a piece means, once."""

from __future__ import annotations

JSON = "application/json"
BINARY = {"type": "string", "format": "binary"}


def ref(name: str) -> dict[str, str]:
    """The schema `name` of the document's components."""
    return {"$ref": f"#/components/schemas/{name}"}


def content(schemas: dict[str, dict]) -> dict[str, dict]:
    """A body in each of these media types, each with its schema."""
    return {media: {"schema": schema} for media, schema in schemas.items()}


def response(description: str, schemas: dict[str, dict] | None = None, **fields: object) -> dict:
    """A response: no body, or one in each media type of `schemas`; `fields` such as headers."""
    described = {"description": description, **fields}
    if schemas:
        described["content"] = content(schemas)
    return described


def json_response(description: str, schema: dict) -> dict:
    return response(description, {JSON: schema})


def operation(
    method: str,
    operation_id: str,
    summary: str,
    responses: dict[str, dict],
    *,
    body: dict[str, dict] | None = None,
    parameters: list[dict] | None = None,
) -> dict[str, dict]:
    """One operation of a path: `body` the request's schema per media type (it is required)."""
    described: dict[str, object] = {"operationId": operation_id, "summary": summary}
    if parameters:
        described["parameters"] = parameters
    if body:
        described["requestBody"] = {"required": True, "content": content(body)}
    described["responses"] = responses
    return {method: described}


def array(items: dict, least: int | None = None, most: int | None = None, **fields: object) -> dict:
    """An array of `items`, of `least` to `most` of them where given."""
    schema: dict[str, object] = {"type": "array", "items": items}
    if least is not None:
        schema["minItems"] = least
    if most is not None:
        schema["maxItems"] = most
    return schema | fields


def exactly(count: int, items: dict, **fields: object) -> dict:
    """An array of exactly `count` `items`."""
    return array(items, count, count, **fields)


def record(
    properties: dict[str, dict],
    required: list[str] | None = None,
    *,
    closed: bool = False,
    **fields: object,
) -> dict:
    """An object with these properties; all of them required unless `required` says which, and
    no others when `closed`."""
    schema: dict[str, object] = {"type": "object"}
    required = list(properties) if required is None else required
    if required:
        schema["required"] = required
    schema["properties"] = properties
    if closed:
        schema["additionalProperties"] = False
    return schema | fields


def or_null(kind: str, **fields: object) -> dict:
    """A value of a JSON type, or null (not known yet, or not there)."""
    return {"type": [kind, "null"], **fields}


def between(kind: str, least: float, most: float) -> dict:
    """A number or an integer from `least` to `most`."""
    return {"type": kind, "minimum": least, "maximum": most}
