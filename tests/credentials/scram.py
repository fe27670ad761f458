"""What PostgreSQL checks at a password login: does a password match a role's SCRAM-SHA-256 verifier?

The test server trusts 127.0.0.1, so a login attempt proves nothing there; the verifier in ``pg_authid`` is
what a server with ``scram-sha-256`` authentication would check (RFC 5802/7677).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import psycopg


def role_verifier(conn: psycopg.Connection[Any], role: str) -> str:
    """The role's stored verifier (superuser only)."""
    row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [role]).fetchone()
    assert row is not None and str(row[0]).startswith("SCRAM-SHA-256$"), "the role has a SCRAM password"
    return str(row[0])


def password_matches(verifier: str, password: str) -> bool:
    """Whether ``password`` (ASCII: our secrets are url-safe base64) opens ``verifier``."""
    _, params, keys = verifier.split("$")
    iterations, salt = params.split(":")
    stored_key = base64.b64decode(keys.split(":")[0])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)
