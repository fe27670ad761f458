"""HTTP plumbing shared by every route: the JSON response class, Mattermost app errors, path clean-up."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
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
# A JSON ``\u0000`` escape: one that follows an even run of backslashes (``\\u0000`` is a backslash, then text).
_JSON_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
# Bodies that are not JSON: raw file uploads (``POST /api/v4/files?filename=``), passed through unread.
_RAW_BODY_PATHS = frozenset({"/api/v4/files"})

# The one bound of every integer parameter: JavaScript's Number.MAX_SAFE_INTEGER (the largest a web client
# sends exactly), past any page or millisecond time, and small enough that a page times a page size (at most a
# few hundred) stays within PostgreSQL's bigint.
INT_MAX = 2**53 - 1
PageQuery = Annotated[int, Query(ge=0, le=INT_MAX)]
PerPageQuery = Annotated[int, Query(ge=1, le=INT_MAX)]
MillisQuery = Annotated[int, Query(ge=0, le=INT_MAX)]


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


def carries_nul(data: bytes) -> bool:
    """Whether JSON text ``data`` holds a NUL character: a NUL byte, or a ``\\u0000`` escape."""
    return b"\x00" in data or (b"\\u0000" in data and _JSON_NUL_ESCAPE.search(data) is not None)


def refuse_nul(error: AppError) -> AppError:
    """``error`` (an invalid parameter), saying why: no string the server stores (nor PostgreSQL's ``text``)
    may hold a NUL character."""
    error.detailed_error = "NUL characters are not allowed."
    return error


def _nul_body_field(body: bytes) -> str:
    """The name of the first field of JSON ``body`` (breadth first) with a NUL character in its value or keys."""
    try:
        fields: list[tuple[str, Any]] = [("body", json.loads(body))]
    except ValueError:
        return "body"
    for name, value in fields:  # grows as it goes: a breadth-first walk
        if isinstance(value, str) and "\x00" in value:
            return name
        if isinstance(value, dict):
            if any("\x00" in key for key in value):
                return name
            fields += [(key, item) for key, item in value.items()]
        elif isinstance(value, list):
            fields += [(name, item) for item in value]
    return "body"


def _nul_in_url(scope: Scope) -> AppError | None:
    """The error for a NUL character in the request's path or query parameters, if there is one."""
    if "\x00" in scope["path"]:
        return refuse_nul(invalid_url_param("path"))
    query: bytes = scope["query_string"]
    if b"%00" not in query and b"\x00" not in query:
        return None
    pairs = urllib.parse.parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    name = next((key for key, value in pairs if "\x00" in value and "\x00" not in key), "query")
    return refuse_nul(invalid_url_param(name))


async def _checked_json_body(receive: Receive) -> tuple[Receive, AppError | None]:
    """Read the whole JSON body: a ``receive`` that gives it again, and the error for a NUL character in it."""
    chunks: list[bytes] = []
    then: Message | None = None
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: the app will find out
            then = message
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    error = refuse_nul(invalid_body_param(_nul_body_field(body))) if carries_nul(body) else None
    return _replay(body, then, receive), error


def _replay(body: bytes, then: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` as one message (then ``then``, if the client left), then what ``receive``
    gives."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": then is not None}]
    if then is not None:
        pending.append(then)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class RequestContextMiddleware:
    """Pure ASGI middleware: collapses repeated slashes in the path, reads bodies as JSON, and tags each
    response with its ``X-Request-ID`` and the ``X-Version-Id`` Mattermost clients read.

    It is also where every string the API takes is checked for NUL characters (which PostgreSQL's ``text``
    cannot hold): in the path, the query parameters and JSON bodies (read here whole, then replayed); such a
    request is answered 400, before anything reads it."""

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
        request_id = new_id()
        scope[_REQUEST_ID_KEY] = request_id
        extra = [(b"x-request-id", request_id.encode()), (b"x-version-id", _VERSION_HEADER)]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        error = _nul_in_url(scope)
        if error is None and scope["method"] in ("POST", "PUT", "PATCH", "DELETE"):
            headers = scope["headers"] = _json_content_type(scope["headers"])
            if scope["path"] not in _RAW_BODY_PATHS and (b"content-type", b"application/json") in headers:
                receive, error = await _checked_json_body(receive)
        if error is not None:
            refusal = JSONResponse(app_error_body(scope, error), status_code=error.status_code)
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
