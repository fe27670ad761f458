"""The stylesheet, scripts and icon of the pages."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from control_plane.web.rendering import STATIC_DIR

router = APIRouter(include_in_schema=False)

STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


STATIC_FILES = {p.name: p for p in STATIC_DIR.iterdir() if p.suffix in STATIC_TYPES} if STATIC_DIR.is_dir() else {}


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """The stylesheet and scripts of the pages."""
    path = STATIC_FILES.get(name)
    if path is None:
        return Response("Not found", status_code=404, media_type="text/plain")
    return FileResponse(
        path,
        media_type=STATIC_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
