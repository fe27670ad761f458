"""Mattermost-style identifiers and timestamps."""

from __future__ import annotations

import base64
import os
import time

_B32_STANDARD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_MATTERMOST = b"ybndrfg8ejkmcpqxot1uwisza345h769"
_TRANSLATION = bytes.maketrans(_B32_STANDARD, _B32_MATTERMOST)


def new_id() -> str:
    """A new 26-character id: 16 random bytes in Mattermost's base32 alphabet, unpadded."""
    return base64.b32encode(os.urandom(16)).translate(_TRANSLATION)[:26].decode()


def is_valid_id(value: str) -> bool:
    """Whether ``value`` has the shape Mattermost accepts for an id: 26 ASCII letters or digits."""
    return len(value) == 26 and value.isascii() and value.isalnum()


def now_ms() -> int:
    """The current time in integer milliseconds since the epoch, as Mattermost stores it."""
    return time.time_ns() // 1_000_000
