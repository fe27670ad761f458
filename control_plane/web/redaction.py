"""Keep secrets out of logs and pages.

- The verification link carries its one-time token in the query string, an invitation link in its
  path (``/invitations/<token>``, also inside a sign-in page's ``next``); uvicorn's access log prints
  full paths, so a filter on ``uvicorn.access`` replaces both by ``***``.
- Reconciler errors are shown to the workspace owner; credentials in URLs are masked first.
"""

from __future__ import annotations

import logging
import re

_SECRET_QUERY = re.compile(r"(?i)([?&](?:token|csrf_token|password)=)[^&#\s]*")
_INVITATION_TOKEN = re.compile(r"(?i)((?:^|[?&]next=)(?:/|%2F)invitations(?:/|%2F))[^/?&#\s]+")
_URL_CREDENTIALS = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@")
_SECRET_ASSIGNMENT = re.compile(r"(?i)\b(password|passwd|secret|token)=\S+")


def redact_query(path: str) -> str:
    """``path`` with invitation tokens and the values of secret query parameters replaced."""
    return _INVITATION_TOKEN.sub(r"\1***", _SECRET_QUERY.sub(r"\1***", path))


def redact_text(text: str) -> str:
    """``text`` with URL credentials and ``password=...``-style values masked."""
    return _SECRET_ASSIGNMENT.sub(r"\1=***", _URL_CREDENTIALS.sub(r"\1***@", text))


class AccessLogRedactor(logging.Filter):
    """Rewrites the path argument of uvicorn access-log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def install_access_log_redaction() -> None:
    """Add the filter to ``uvicorn.access`` once (logging config keeps logger filters)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogRedactor) for f in logger.filters):
        logger.addFilter(AccessLogRedactor())
