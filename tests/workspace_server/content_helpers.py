"""Helpers shared by the content tests: drivers, users and test images."""

from __future__ import annotations

import io
from typing import Any

from mattermostdriver import Driver
from PIL import Image


def driver(server: Any, login_id: str = "", password: str = "", token: str = "") -> Driver:
    """A logged-in ``mattermostdriver`` client (by password, or by personal access token)."""
    options: dict[str, Any] = {
        "url": "127.0.0.1",
        "port": server.port,
        "scheme": "http",
        "basepath": "/api/v4",
        "timeout": 10,
    }
    if token:
        options["token"] = token
    else:
        options |= {"login_id": login_id, "password": password}
    client = Driver(options)
    client.login()
    return client


def make_user(admin_client: Driver, team_id: str, name: str) -> tuple[dict[str, Any], str]:
    """Create ``name`` (password ``<name>-password``) and add them to the team; answers the user and password."""
    password = f"{name}-password"
    user = admin_client.users.create_user({"email": f"{name}@acme.test", "username": name, "password": password})
    admin_client.teams.add_user_to_team(team_id, {"team_id": team_id, "user_id": user["id"]})
    return user, password


def png_bytes(width: int = 640, height: int = 480, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A PNG image of the given size."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    """The pixel size of an encoded image (and proof that it decodes)."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


def image_format(data: bytes) -> str:
    """The format Pillow finds in ``data``."""
    with Image.open(io.BytesIO(data)) as image:
        return str(image.format)
