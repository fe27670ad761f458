"""The local runtime's two server slots per workspace, for blue/green release switches.

A workspace's server runs in one of two runtime directories under ``<state_dir>/workspaces/<id>``: ``runtime``
(also the home of ``spawn.lock``, the workspace's spawner lock) and ``runtime-b``. Each slot holds at most one
server (its ``server.lock``). Which slot is current (the one the recorded outputs name) is the file
``runtime.current`` (absent: ``runtime``), replaced atomically when a switch completes. The release a slot's
server was started as is its ``server.release`` (absent: a server started before releases, the bundled one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from control_plane.providers.base import RunRelease

SLOTS = ("runtime", "runtime-b")
CURRENT_FILE = "runtime.current"
RELEASE_FILE = "server.release"


@dataclass(frozen=True)
class Slots:
    """The two slot directories of the workspace whose directory is ``root``."""

    root: Path

    @property
    def home(self) -> Path:
        """The first slot, which also holds the workspace's spawner lock."""
        return self.root / SLOTS[0]

    def all(self) -> tuple[Path, ...]:
        """Both slot directories."""
        return tuple(self.root / name for name in SLOTS)

    def current(self) -> Path:
        """The slot the workspace's outputs name (the one serving, or to serve)."""
        try:
            name = (self.root / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            name = SLOTS[0]
        return self.root / (name if name in SLOTS else SLOTS[0])

    def other(self) -> Path:
        """The slot that is not current (the previous server, or the next one being started)."""
        current = self.current().name
        return self.root / next(name for name in SLOTS if name != current)

    def make_current(self, slot: Path) -> None:
        """Point at ``slot`` (atomic: a crash leaves the old pointer or the new one)."""
        temporary = self.root / (CURRENT_FILE + ".tmp")
        temporary.write_text(slot.name + "\n")
        os.replace(temporary, self.root / CURRENT_FILE)

    def remove_pointer(self) -> None:
        """Forget which slot is current (teardown)."""
        (self.root / CURRENT_FILE).unlink(missing_ok=True)


def mark_release(slot: Path, release: RunRelease | None) -> None:
    """Record the release a server is about to be started as in ``slot`` (nothing for an unnamed one)."""
    (slot / RELEASE_FILE).unlink(missing_ok=True)
    if release is not None:
        (slot / RELEASE_FILE).write_text(release.version + "\n")


def runs(slot: Path, release: RunRelease | None) -> bool:
    """Whether the server in ``slot`` was started as ``release`` (any server does when none is asked for; one
    started before releases counts as the bundled release)."""
    if release is None:
        return True
    try:
        started_as = (slot / RELEASE_FILE).read_text().strip()
    except FileNotFoundError:
        return release.command is None
    return started_as == release.version
