"""Workspace addresses: DNS-label rules, reserved names, case folding."""

from __future__ import annotations

import re
from dataclasses import dataclass

RESERVED = frozenset(
    {
        "www", "api", "admin", "app", "apps", "auth", "billing", "blog", "cdn", "console", "dashboard",
        "dev", "docs", "help", "internal", "login", "mail", "portal", "root", "sales", "signup",
        "smtp", "static", "status", "support", "system", "canopy", "localhost", "ns1", "ns2", "test",
    }
)  # fmt: skip
MIN_LENGTH = 3
MAX_LENGTH = 63
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


@dataclass(frozen=True)
class SlugVerdict:
    """Whether a slug may be used, and why not."""

    slug: str
    valid: bool
    reason: str | None = None


def normalize(raw: str) -> str:
    """Case-fold and trim a requested address."""
    return raw.strip().casefold()


def check_format(raw: str) -> SlugVerdict:
    """Check DNS-label rules and reserved names (not availability)."""
    slug = normalize(raw)
    if not MIN_LENGTH <= len(slug) <= MAX_LENGTH:
        return SlugVerdict(slug, False, f"must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
    if not _LABEL.match(slug):
        return SlugVerdict(
            slug,
            False,
            "may use only letters, digits and hyphens, and must start and end with a letter or a digit"[:200],
        )
    if "--" in slug[2:4]:
        return SlugVerdict(slug, False, "must not have hyphens in the third and fourth places")
    if slug in RESERVED:
        return SlugVerdict(slug, False, "is reserved")
    return SlugVerdict(slug, True)
