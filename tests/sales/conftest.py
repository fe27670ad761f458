"""Sales API tests share the control-plane API fixtures (the app in-process on a database of its own)."""

from tests.control_plane.conftest import client, cp_database, sign_up

__all__ = ["client", "cp_database", "sign_up"]
