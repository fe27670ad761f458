"""Which cell the provider calls of this thread of work are about (the AWS call budget is kept per cell)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

CONTROL = "control"
"""The cell of calls about no cell (the fleet's own resources, sweeps, operators' tools)."""
_cell: ContextVar[str] = ContextVar("canopy_cell", default=CONTROL)


def current_cell() -> str:
    """The cell the calls made now are about."""
    return _cell.get()


@contextmanager
def about_cell(cell: str) -> Iterator[None]:
    """Count the calls made inside against ``cell``'s budget."""
    token = _cell.set(cell)
    try:
        yield
    finally:
        _cell.reset(token)
