"""The runtime directory contract with the control plane: ``server.lock`` held for the process's life
means a server is alive; ``server.pid`` says which; ``server.port`` says where it listens once it serves."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_FILE = "server.lock"
PID_FILE = "server.pid"
PORT_FILE = "server.port"


class AlreadyRunning(Exception):
    """Another process holds the runtime directory's lock."""


class RuntimeDir:
    """An exclusively locked runtime directory; the lock lasts until :meth:`release` or process exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[bytes] | None = None

    def acquire(self) -> None:
        """Take the lock without waiting (raise :class:`AlreadyRunning` if held) and write the pid file."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = open(self.path / LOCK_FILE, "ab")  # noqa: SIM115 - held open for the process's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise AlreadyRunning(str(self.path)) from None
        self._lock = lock
        (self.path / PORT_FILE).unlink(missing_ok=True)
        _write_atomically(self.path / PID_FILE, f"{os.getpid()}\n")

    def publish_port(self, port: int) -> None:
        """Write the port file (atomically: readers see the whole port or no file)."""
        _write_atomically(self.path / PORT_FILE, f"{port}\n")

    def release(self) -> None:
        """Remove the port and pid files, then drop the lock."""
        if self._lock is None:
            return
        (self.path / PORT_FILE).unlink(missing_ok=True)
        (self.path / PID_FILE).unlink(missing_ok=True)
        self._lock.close()
        self._lock = None


def _write_atomically(path: Path, content: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(content)
    os.replace(temporary, path)
