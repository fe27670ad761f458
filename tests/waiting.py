"""The one way tests wait: poll a condition until it holds, with a deadline (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def wait_until(what: str | Callable[[], str], check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``check()`` until it is true; fail the test after ``timeout`` naming ``what`` (or what it returns)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what() if callable(what) else what}")
        time.sleep(0.05)
