"""The keys that encrypt workspace credentials: Fernet keys from ``CANOPY_CREDENTIAL_KEYS``, newest first.

The newest key encrypts; every listed key decrypts, so a new key can be put in front, every credential
re-encrypted under it (``canopy rotate-credential-keys``), and the old key removed. In dev mode, with no key
configured, one key is derived from ``CANOPY_SECRET_KEY`` (which ``canopy run`` keeps random per state dir).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from control_plane.core.security import InsecureConfiguration, require_real_clock, require_secret_key
from control_plane.core.settings import Settings

KEYS_VARIABLE = "CANOPY_CREDENTIAL_KEYS"
DEV_KEY_LABEL = b"canopy dev credential key"


class UndecryptableCredential(RuntimeError):
    """A stored credential that none of the configured keys opens (its key was removed too early)."""


def key_id(key: str) -> str:
    """A short public name of a key (a digest: reveals nothing about the key)."""
    return hashlib.sha256(b"canopy credential key id:" + key.encode()).hexdigest()[:16]


def dev_key(secret_key: str) -> str:
    """The dev-mode key: derived from ``CANOPY_SECRET_KEY``."""
    digest = hmac.new(secret_key.encode(), DEV_KEY_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()


@dataclass(frozen=True)
class Keyring:
    """The configured keys, newest first."""

    keys: tuple[str, ...]

    @property
    def newest_id(self) -> str:
        return key_id(self.keys[0])

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key_id(k) for k in self.keys)

    def _fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(k) for k in self.keys])

    def encrypt(self, plaintext: str) -> bytes:
        """Ciphertext of ``plaintext`` under the newest key."""
        return self._fernet().encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        """The plaintext, with whichever key made ``ciphertext``."""
        try:
            return self._fernet().decrypt(ciphertext).decode()
        except InvalidToken:
            raise UndecryptableCredential(f"no key in {KEYS_VARIABLE} decrypts this credential") from None

    def reencrypt(self, ciphertext: bytes) -> bytes:
        """``ciphertext`` re-encrypted under the newest key (same plaintext)."""
        try:
            return self._fernet().rotate(ciphertext)
        except InvalidToken:
            raise UndecryptableCredential(f"no key in {KEYS_VARIABLE} decrypts this credential") from None


def keyring(settings: Settings) -> Keyring:
    """The keyring of ``settings``; refuses a missing key outside dev mode and anything that is no Fernet key."""
    keys = tuple(k.get_secret_value() for k in settings.credential_keys)
    if not keys:
        if not settings.dev_mode:
            raise InsecureConfiguration(
                f"{KEYS_VARIABLE} is not set: give it a JSON list of Fernet keys, newest first (generate one with"
                ' `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`)'
            )
        keys = (dev_key(settings.secret_key.get_secret_value()),)
    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except ValueError:
            raise InsecureConfiguration(
                f"{KEYS_VARIABLE}[{index}] is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return Keyring(keys)


def insecure_configuration(settings: Settings) -> str | None:
    """Why ``settings`` must not start Canopy (a public default key, unusable credential keys), or None."""
    try:
        require_secret_key(settings)
        require_real_clock(settings)
        keyring(settings)
    except InsecureConfiguration as exc:
        return str(exc)
    return None
