"""Every refusal in the one JSON error shape: handlers, JSON 413s, and 405 with `Allow`."""

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY as LIMIT_KEY
from starlette.routing import Match, Mount
from starlette.types import Message, Scope, Send

from app.engine.steps import finite
from app.live.wire import dumps
from app.web.asgi import HttpSendWrapper

log = logging.getLogger("backbeat")
READ_ONLY = ("GET", "HEAD")  # what a mounted static folder answers
CANDIDATE_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route answers at this path (the router reports only the first's).

    Each method is tried against the routes as the router itself would match it, so routers
    included at any depth count; a mounted static folder answers only GET and HEAD.
    """
    allowed = []
    root = scope.get("app_root_path", scope.get("root_path", ""))  # as before any mount
    for method in CANDIDATE_METHODS:
        trial = {**scope, "method": method, "root_path": root}
        for route in app.router.routes:
            match, _ = route.matches(dict(trial))
            if match is Match.FULL and (not isinstance(route, Mount) or method in READ_ONLY):
                allowed.append(method)
                break
    # a literal path (/api/runs/external) is its own resource, not a run named "external"
    literal = app.openapi().get("paths", {}).get(scope["path"][len(root) :])
    if literal:
        allowed = [m for m in allowed if m.lower() in literal]
    return sorted(allowed)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error status the `{"detail": ...}` body."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, but a NaN or Infinity the client sent is echoed back as null."""
        errors = located(exc.errors(), {"body": exc.body})
        return JSONResponse({"detail": finite(jsonable_encoder(errors))}, 422)

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        detail = exc.detail
        if exc.status_code == 413 and detail in GENERIC_413:  # a route's own sentence stays
            detail = too_large(request.scope.get(LIMIT_KEY))
        if exc.status_code == 405:
            allow = allowed_methods(request.app, request.scope)
            headers["Allow"] = ", ".join(allow)
            detail = f"{request.method} is not allowed here; use {' or '.join(allow)}"
        return JSONResponse({"detail": detail}, exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        """Log the traceback here; the client gets a plain sentence, never a stack."""
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error; the server log has the details"}, 500)


TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")


def located(errors, body: object) -> list[dict]:
    """Validation errors located at the field the client sent, as for a flat object.

    A discriminated union (a control's `action`) puts its tag into `loc` and reports a bad
    tag at the enclosing object: drop the tag from the path, and name the tag's field.
    `body` is what was validated, rooted as `loc` is (FastAPI's `{"body": …}`).
    """
    out = []
    for error in errors:
        loc, node = [], body
        for part in error["loc"]:
            if isinstance(node, dict) and part not in node and part in node.values():
                continue  # a union's tag, not a field
            loc.append(part)
            node = child(node, part)
        if error.get("type") in TAG_ERRORS:
            loc.append(str(error.get("ctx", {}).get("discriminator", "")).strip("'"))
        out.append({**error, "loc": tuple(loc)})
    return out


def child(node: object, part: str | int) -> object:
    """`node[part]` when it is there, else None."""
    if isinstance(node, dict):
        return node.get(part) if isinstance(part, str) else None
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


GENERIC_413 = {HTTPStatus(413).phrase, "Content Too Large", "Request Entity Too Large"}


def too_large(limit: int | None) -> str:
    """The 413 sentence, naming the limit that applied (routes may set their own)."""
    if limit is None:
        return "the request body is over the server's limit"
    size = f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit / 1024:g} KiB"
    return f"the request body is over {size} ({limit:,} bytes), the limit here"


class JsonTooLarge(HttpSendWrapper):
    """Starlette answers an oversized body in plain text; this gives it the JSON error shape.

    The limits themselves stay Starlette's (`max_body_size`, app-wide or per route), so a
    route with a larger limit (ingest) keeps it.
    """

    def wrap(self, scope: Scope, send: Send) -> Send:
        replaced: bytes | None = None

        async def json_send(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if not content_type.startswith(b"application/json"):
                    replaced = dumps({"detail": too_large(scope.get(LIMIT_KEY))}).encode()
                    headers = [(b"content-type", b"application/json")]
                    headers.append((b"content-length", b"%d" % len(replaced)))
                    await send({**message, "headers": headers})
                    return
            if replaced is not None and message["type"] == "http.response.body":
                if not message.get("more_body"):
                    await send({"type": "http.response.body", "body": replaced})
                return
            await send(message)

        return json_send
