"""Password hashing, token generation and per-workspace secret derivation."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from control_plane.core.settings import get_settings

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Argon2id hash of ``password`` in the standard encoded form."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token(prefix: str) -> str:
    """A new random secret token, readable by its prefix (``cnp_...``)."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_digest(token: str) -> str:
    """SHA-256 digest stored instead of a token (tokens are high-entropy; no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def derive_secret(purpose: str, subject: str) -> str:
    """A stable secret for ``subject`` derived from the deployment's secret key.

    Re-running a provisioning step derives the same credential, so steps stay idempotent
    without storing passwords anywhere.
    """
    key = get_settings().secret_key.get_secret_value().encode()
    return hmac.new(key, f"{purpose}:{subject}".encode(), hashlib.sha256).hexdigest()
