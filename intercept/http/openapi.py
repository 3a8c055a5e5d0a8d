"""The OpenAPI 3.1 description of the HTTP server, generated from the route table and Structs."""

from __future__ import annotations

import ast
import inspect
import sys
from functools import cache
from importlib import metadata
from typing import Any

import msgspec

from ..foundation.jsontext import canonical
from .routing import Route
from .schemas import ErrorBody

_REF = "#/components/schemas/{name}"
_STATUS_TEXT = {200: "OK", 201: "Created", 400: "Bad request", 401: "No valid token",
                403: "The token's role is too low", 404: "Not found", 409: "Conflict",
                413: "Body too large", 422: "Refused",
                429: "Too many failed authentications from this address (see Retry-After)"}


def _version() -> str:
    try:
        return metadata.version("intercept")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "0"


def openapi(routes: list[Route]) -> dict[str, Any]:
    """An OpenAPI 3.1 document describing `routes` (descriptions cleaned, `required` sorted)."""
    types: list[Any] = [ErrorBody]
    for route in routes:
        for t in (route.query, route.body, *route.responses.values()):
            if t is not None and not isinstance(t, dict) and t not in types:
                types.append(t)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    _describe_fields(types, components)
    schema_of = dict(zip(types, schemas, strict=True))
    queries = {}
    for route in routes:  # query Structs become parameters, not components
        if route.query is not None:
            queries[route.query] = components.pop(route.query.__name__, None) or queries.get(
                route.query)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            route, schema_of, queries.get(route.query))
    return canonical({
        "openapi": "3.1.0",
        "info": {"title": "Intercept", "version": _version(),
                 "description": "The Intercept server's HTTP API. See docs/api.md."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token from INTERCEPT_API_TOKENS "
                                                          "or api.tokens_file."}},
        },
    })


def _operation(route: Route, schema_of: dict[Any, Any], query: dict[str, Any] | None
               ) -> dict[str, Any]:
    description = route.description
    if route.role is not None:
        description = (f"{description}\n\n" if description else "") + (
            f"Needs the {route.role.name} role (or higher)."
            + (" Audited." if route.audit else ""))
    op: dict[str, Any] = {"summary": route.summary,
                          "operationId": route.handler.__name__.lstrip("_"),
                          "tags": list(route.tags) or ["public"]}
    if description:
        op["description"] = description
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 1}} for name in route.params]
    if query is not None:
        required = set(query.get("required", ()))
        for name, prop in query.get("properties", {}).items():
            parameters.append({"name": name, "in": "query", "required": name in required,
                               "schema": prop})
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        op["requestBody"] = {"required": bool(msgspec.structs.fields(route.body)),
                             "content": {"application/json": {"schema": schema_of[route.body]}}}
    responses: dict[str, Any] = {}
    for status, shape in route.responses.items():
        responses[str(status)] = _response(status, shape, schema_of, route.content_type)
    errors = []
    if route.query is not None or route.body is not None:
        errors.append(400)
    if route.role is not None:
        errors += [401, 403, 429]
    for status in errors:
        responses.setdefault(str(status), _response(status, ErrorBody, schema_of,
                                                    "application/json"))
    op["responses"] = responses
    if route.role is not None:
        op["security"] = [{"bearer": []}]
        op["x-intercept-role"] = route.role.name
        op["x-intercept-audited"] = route.audit
    return op


def _response(status: int, shape: Any, schema_of: dict[Any, Any], content_type: str
              ) -> dict[str, Any]:
    text = _STATUS_TEXT.get(status, "Response")
    if shape is None:
        return {"description": text, "content": {content_type: {"schema": {"type": "string"}}}}
    if isinstance(shape, dict):
        return {"description": text, "content": {"application/json": {"schema": shape}}}
    return {"description": text, "content": {"application/json": {"schema": schema_of[shape]}}}


@cache
def _field_docs(module_name: str) -> dict[str, dict[str, str]]:
    """{class: {field: docstring}} from the string literals under fields in a module's source."""
    try:
        tree = ast.parse(inspect.getsource(sys.modules[module_name]))
    except (OSError, TypeError, KeyError):  # pragma: no cover - no source (frozen)
        return {}
    docs: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = docs.setdefault(node.name, {})
        for before, after in zip(node.body, node.body[1:], strict=False):
            if (isinstance(before, ast.AnnAssign) and isinstance(before.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                fields[before.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _describe_fields(types: list[Any], components: dict[str, Any]) -> None:
    """Give each property of a Struct's schema the docstring written under its field."""
    for t in types:
        component = components.get(getattr(t, "__name__", ""))
        if component is None or not hasattr(t, "__struct_fields__"):
            continue
        docs = _field_docs(t.__module__).get(t.__name__, {})
        properties = component.get("properties", {})
        for field in msgspec.structs.fields(t):
            doc = docs.get(field.name)
            prop = properties.get(field.encode_name)
            if doc and prop is not None and "description" not in prop:
                prop["description"] = doc
