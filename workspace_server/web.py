"""HTTP plumbing shared by every route: the JSON response class, Mattermost app errors, path clean-up."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workspace_server.ids import new_id

# The Mattermost server version whose API this server follows; clients read it from X-Version-Id.
MATTERMOST_VERSION = "9.11.0"
_VERSION_HEADER = f"{MATTERMOST_VERSION}.0.canopy.false".encode()
_REQUEST_ID_KEY = "canopy.request_id"
_SLASHES = re.compile(r"//+")
_RAW_SLASHES = re.compile(rb"//+")


class JSONResponse(Response):
    """JSON with ``Content-Type: application/json`` exactly: Mattermost clients compare the header verbatim."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise ``content`` compactly as UTF-8 JSON."""
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def status_ok() -> JSONResponse:
    """Mattermost's ``{"status": "OK"}`` body."""
    return JSONResponse({"status": "OK"})


class AppError(Exception):
    """A Mattermost ``AppError``: rendered as its JSON body with ``status_code``."""

    def __init__(self, status_code: int, error_id: str, message: str, detailed_error: str = "") -> None:
        super().__init__(error_id)
        self.status_code = status_code
        self.error_id = error_id
        self.message = message
        self.detailed_error = detailed_error


def invalid_url_param(name: str) -> AppError:
    """400 for a missing or malformed path or query parameter."""
    return AppError(
        400, "api.context.invalid_url_param.app_error", f"Invalid or missing {name} parameter in request URL."
    )


def invalid_body_param(name: str) -> AppError:
    """400 for a missing or malformed request body field."""
    return AppError(400, "api.context.invalid_body_param.app_error", f"Invalid or missing {name} in request body.")


def permission_error() -> AppError:
    """403 for an authenticated caller who may not do this."""
    return AppError(403, "api.context.permissions.app_error", "You do not have the appropriate permissions.")


def session_expired() -> AppError:
    """401 for a request without a valid session."""
    return AppError(401, "api.context.session_expired.app_error", "Invalid or expired session, please login again.")


def internal_error() -> AppError:
    """500 for anything unexpected (logged with its traceback where it is caught)."""
    return AppError(500, "api.context.internal_error.app_error", "An internal error occurred.")


def app_error_body(scope: Scope, error: AppError) -> dict[str, Any]:
    """The JSON body of ``error`` in answer to the request of ``scope``."""
    return {
        "id": error.error_id,
        "message": error.message,
        "detailed_error": error.detailed_error,
        "request_id": scope.get(_REQUEST_ID_KEY, ""),
        "status_code": error.status_code,
    }


def _error_response(request: Request, error: AppError) -> JSONResponse:
    return JSONResponse(app_error_body(request.scope, error), status_code=error.status_code)


async def _app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return _error_response(request, exc)


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = AppError(404, "api.context.404.app_error", "Sorry, we could not find the page.")
    else:
        error = AppError(exc.status_code, "api.context.http_error.app_error", str(exc.detail))
    return _error_response(request, error)


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    location = errors[0].get("loc", ()) if errors else ()
    name = str(location[-1]) if location else "body"
    if location and location[0] == "body":
        return _error_response(request, invalid_body_param(name))
    return _error_response(request, invalid_url_param(name))


async def _internal_error_handler(request: Request, exc: Exception) -> Response:
    # Starlette re-raises the exception after this response, and uvicorn logs it with its traceback.
    return _error_response(request, internal_error())


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, including routing and validation ones, a Mattermost app-error JSON body."""
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(HTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(Exception, _internal_error_handler)


def _json_content_type(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Request headers with any non-multipart Content-Type replaced by JSON: like Mattermost, the API reads
    request bodies as JSON whatever the client declared (multipart stays for file uploads)."""
    kept = [(k, v) for k, v in headers if k != b"content-type" or v.startswith(b"multipart/")]
    if len(kept) == len(headers) and any(k == b"content-type" for k, _ in headers):
        return headers
    return [*kept, (b"content-type", b"application/json")]


class RequestContextMiddleware:
    """Pure ASGI middleware: collapses repeated slashes in the path, reads bodies as JSON, and tags each
    response with its ``X-Request-ID`` and the ``X-Version-Id`` Mattermost clients read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if "//" in path:
            scope["path"] = _SLASHES.sub("/", path)
            if scope.get("raw_path"):
                scope["raw_path"] = _RAW_SLASHES.sub(b"/", scope["raw_path"])
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            scope["headers"] = _json_content_type(scope["headers"])
        request_id = new_id()
        scope[_REQUEST_ID_KEY] = request_id
        extra = [(b"x-request-id", request_id.encode()), (b"x-version-id", _VERSION_HEADER)]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
