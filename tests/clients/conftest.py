"""Client acceptance tests run the workspace server the same way as tests/workspace_server does."""

from __future__ import annotations

from tests.workspace_server.conftest import admin, server, spawn_server

__all__ = ["admin", "server", "spawn_server"]
