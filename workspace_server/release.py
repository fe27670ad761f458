"""This build's release identity, which the control plane reads back (``GET /api/v4/system/ping``, ``/metrics``)
when it rolls releases across workspaces."""

from __future__ import annotations

from typing import Final

from workspace_server.migrate import HEAD_REVISION

RELEASE_VERSION: Final = "0.1.0"
"""This build's Canopy workspace-server release (the control plane's ``default_release`` names the same)."""

SCHEMA_REVISION: Final = int(HEAD_REVISION)
"""The release's schema level: the number of the newest migration under ``migrations/versions``."""
