"""Password hashing, token generation, and the refusal of a public default secret key outside dev mode."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from control_plane.core.settings import DEFAULT_SECRET_KEY, Settings

_hasher = PasswordHasher()
NO_PASSWORD = "!no-password"
"""The password hash of an account whose owner has not chosen a password yet (it matches no password)."""


def hash_password(password: str) -> str:
    """Argon2id hash of ``password`` in the standard encoded form."""
    return _hasher.hash(password)


def has_password(password_hash: str) -> bool:
    """Whether an account with ``password_hash`` has a password of its own (not :data:`NO_PASSWORD`)."""
    return password_hash != NO_PASSWORD


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


class InsecureConfiguration(RuntimeError):
    """The deployment's secrets are missing or public; the message names the variable to set."""


def require_secret_key(settings: Settings) -> None:
    """Refuse the public default ``CANOPY_SECRET_KEY`` outside dev mode."""
    if not settings.dev_mode and settings.secret_key.get_secret_value() == DEFAULT_SECRET_KEY:
        raise InsecureConfiguration(
            "CANOPY_SECRET_KEY is the public default: set it to a random value (e.g. `python -c"
            ' "import secrets; print(secrets.token_urlsafe(32))"`), or CANOPY_DEV_MODE=true for development'
        )


def require_real_clock(settings: Settings) -> None:
    """Refuse a travelling clock (``CANOPY_CLOCK_FILE``) outside dev mode."""
    if not settings.dev_mode and settings.clock_file is not None:
        raise InsecureConfiguration("CANOPY_CLOCK_FILE moves the clock: it is for dev mode and tests only")


SECRET_KEY_FILE = "secret_key"


def state_dir_secret_key(state_dir: Path) -> str:
    """The embedded default's secret key: random, made once, kept in ``<state_dir>/secret_key`` (mode 0600)."""
    path = state_dir / SECRET_KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        draft = state_dir / f".{SECRET_KEY_FILE}.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32))
        try:
            os.link(draft, path)  # atomic, and never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()
