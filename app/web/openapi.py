"""The OpenAPI document: FastAPI's, plus the refusals the framework itself sends.

Every operation that reads a JSON body may answer 400 (unreadable) and 413 (too large);
every operation with an input that can be wrong may answer 422. Those are added here with
the shared error model, so a new route only declares the refusals its own code raises
(`errors(404, ...)`).
The document is rebuilt when the set of known datasets changes, so its enum stays true.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.engine.config import known_datasets
from app.web.routes.errors import REASONS, Error

ERROR_REF = {"$ref": "#/components/schemas/Error"}
FRAMEWORK_SCHEMAS = ("HTTPValidationError", "ValidationError")  # replaced by Error
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def _error_response(code: int) -> dict[str, Any]:
    return {"description": REASONS[code], "content": {"application/json": {"schema": ERROR_REF}}}


def _can_fail(operation: dict[str, Any]) -> bool:
    """Whether any input can be invalid: a body, a required query, or a constrained value."""
    if "requestBody" in operation:
        return True
    for param in operation.get("parameters", []):
        plain = set(param.get("schema", {})) <= {"type", "title", "description"}
        if param["in"] != "path" and param.get("required"):
            return True
        if not (plain and param.get("schema", {}).get("type") == "string"):
            return True
    return False


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the framework's refusals to each operation, all with the one error model."""
    for item in doc.get("paths", {}).values():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                for code in (400, 413, 422):
                    responses.setdefault(str(code), _error_response(code))
            if "422" in responses:
                if _can_fail(operation):
                    responses["422"] = _error_response(422)
                else:  # FastAPI lists it for any parameter, even a path string
                    del responses["422"]
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in FRAMEWORK_SCHEMAS:
        schemas.pop(name, None)
    error = Error.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in {**error.pop("$defs", {}), "Error": error}.items():
        schemas.setdefault(name, schema)
    return doc


def install(app: FastAPI) -> None:
    """Serve the completed document, rebuilt whenever the dataset registry changes."""
    cache: dict[str, Any] = {}

    def names() -> tuple[str, ...]:
        tables = getattr(app.state, "tables", None)  # uploaded sets, once the lifespan runs
        uploaded = [entry["name"] for entry in tables.list()] if tables is not None else []
        return (*known_datasets(), *uploaded)

    def openapi() -> dict[str, Any]:
        key = names()
        if cache.get("key") != key or app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            doc = complete(doc)
            for schema in doc["components"]["schemas"].values():
                dataset = schema.get("properties", {}).get("dataset")
                if dataset and "enum" in dataset:
                    dataset["enum"] = list(key)
            cache.update(key=key, doc=doc)
        app.openapi_schema = cache["doc"]
        return cache["doc"]

    app.openapi = openapi
