"""RFC 9457 problem details: the one error shape of the HTTP API."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://canopy.dev/problems/"
log = logging.getLogger(__name__)


class Problem(Exception):
    """An error the API reports as ``application/problem+json``; ``headers`` go along with the response."""

    def __init__(self, status: int, slug: str, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self, instance: str) -> dict[str, Any]:
        """The problem document."""
        doc: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "instance": instance,
        }
        if self.detail:
            doc["detail"] = self.detail
        doc.update(self.extra)
        return doc


class NotFound(Problem):
    """The resource does not exist, or the caller may not know that it does."""

    def __init__(self, what: str) -> None:
        super().__init__(404, "not-found", "Not found", f"{what} was not found")


class Conflict(Problem):
    """The request conflicts with the current state of the resource."""

    def __init__(self, slug: str, detail: str, **extra: Any) -> None:
        super().__init__(409, slug, "Conflict", detail, **extra)


class Unauthorized(Problem):
    """No valid credentials."""

    def __init__(self, detail: str = "A valid API token is required") -> None:
        super().__init__(401, "unauthorized", "Unauthorized", detail)


class Forbidden(Problem):
    """Valid credentials without the needed role."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, "forbidden", "Forbidden", detail)


class InvalidInput(Problem):
    """Input that is well-formed but not acceptable, reported per field."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(422, "invalid-input", "Invalid input", detail, errors=[{"field": field, "detail": detail}])


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "instance"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "instance": {"type": "string"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "detail"],
                "properties": {"field": {"type": "string"}, "detail": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}
STATUS_TITLES = {
    400: "The request cannot be parsed",
    401: "Unauthorized",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    410: "Gone",
    422: "Invalid input",
    429: "Too many requests",
    503: "Service unavailable",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting that a route answers ``statuses`` with problem documents."""
    return {
        status: {"description": STATUS_TITLES[status], "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}}
        for status in statuses
    }


def problem_response(problem: Problem, request: Request, headers: dict[str, str] | None = None) -> JSONResponse:
    """Render ``problem`` for ``request`` with its own headers (and ``headers``)."""
    body = problem.body(request.url.path)
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    all_headers = {**problem.headers, **(headers or {})}
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=all_headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method some route answers on ``request``'s path (Starlette's 405 names only the first route's)."""

    def answered(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes)

    return ", ".join(method for method in HTTP_METHODS if answered(method))


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` an RFC 9457 problem response."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field_name(e["loc"]), "detail": e["msg"]} for e in exc.errors()]
        problem = Problem(422, "invalid-input", "Invalid input", "The request has invalid fields", errors=errors)
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        problem = Problem(exc.status_code, f"http-{exc.status_code}", title, str(exc.detail))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return problem_response(problem, request, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        problem = Problem(500, "internal-error", "Internal server error", "The error was logged")
        return problem_response(problem, request)
