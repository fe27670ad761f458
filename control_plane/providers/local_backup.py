"""The local runtime's backups: encrypted part files under ``<state_dir>/backups/<workspace id>/<backup id>/``.

- ``database.part``: ``pg_dump -Fc`` of the workspace's database, as the workspace's own role (it owns its
  database), counted in the dump's snapshot;
- ``files.part``: a tar of the workspace's files directory.

Each part is encrypted (:func:`data_copy.encrypt`: AES-256-GCM under a data key of its own, wrapped by the credential
keyring), written mode 0600 beside its final name and renamed into place. A part's size and SHA-256 are those of the
file as stored, so :meth:`LocalBackup.verify` finds a flipped byte by its checksum, and decrypting it (which verify
also does) by its authentication tag.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from control_plane.credentials.keys import Keyring
from control_plane.providers import data_copy
from control_plane.providers.base import BackupPart, ScratchDatabase, WorkspaceSpec
from control_plane.providers.local import LocalDatabase, LocalStorage
from control_plane.providers.scratch import scratch_database

DATABASE_PART = "database"
FILES_PART = "files"


def write_part(path: Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``path`` (mode 0600) through a temporary file renamed into place once synced."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


class LocalBackup:
    """Backs a workspace's database and files up to encrypted files on this machine, and restores them."""

    def __init__(self, state_dir: Path, database: LocalDatabase, storage: LocalStorage, keys: Keyring) -> None:
        self._root = state_dir.resolve() / "backups"
        self._database = database
        self._storage = storage
        self._keys = keys

    def _path(self, ws: WorkspaceSpec, backup_id: uuid.UUID, name: str) -> Path:
        return self._root / str(ws.id) / str(backup_id) / f"{name}.part"

    def _files_dir(self, ws: WorkspaceSpec, outputs: Mapping[str, Any]) -> Path:
        return Path(str(outputs.get("files_dir") or self._storage.files_dir(ws)))

    def _save(self, path: Path, name: str, plain: Iterable[bytes], count: int | None) -> BackupPart:
        meter = data_copy.Meter()
        write_part(path, meter.wrap(data_copy.encrypt(plain, self._keys)))
        return BackupPart(name, {"path": str(path)}, meter.size, meter.sha256, count)

    def back_up_database(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], backup_id: uuid.UUID) -> BackupPart:
        path = self._path(ws, backup_id, DATABASE_PART)
        with data_copy.dump_database(self._database.connection_url(ws), data_copy.POST_COUNT) as dump:
            return self._save(path, DATABASE_PART, dump.chunks, dump.count)

    def back_up_files(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], backup_id: uuid.UUID) -> BackupPart:
        members = data_copy.directory_members(self._files_dir(ws, outputs))
        path = self._path(ws, backup_id, FILES_PART)
        return self._save(path, FILES_PART, data_copy.pack_files(members), len(members))

    def _plain(self, part: BackupPart) -> Iterable[bytes]:
        path = Path(str(part.location["path"]))
        if not path.is_file():
            raise data_copy.CorruptPart(f"part {part.name} is missing")
        return data_copy.decrypt(data_copy.file_chunks(path), self._keys)

    def restore_database(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], part: BackupPart) -> None:
        data_copy.restore_database(self._database.connection_url(ws), self._plain(part))

    def restore_files(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], part: BackupPart) -> None:
        data_copy.unpack_to_directory(self._plain(part), self._files_dir(ws, outputs))

    def verify(self, part: BackupPart) -> str | None:
        path = Path(str(part.location["path"]))
        if not path.is_file():
            return f"part {part.name} is missing"
        meter = data_copy.Meter()
        try:
            for _ in data_copy.decrypt(meter.wrap(data_copy.file_chunks(path)), self._keys):
                pass
        except data_copy.CorruptPart as exc:
            return f"part {part.name}: {exc}"
        if meter.size != part.size:
            return f"part {part.name} holds {meter.size} bytes, {part.size} were written"
        if meter.sha256 != part.sha256:
            return f"part {part.name}: checksum mismatch"
        return None

    def scratch_restore(self, scratch: WorkspaceSpec, part: BackupPart) -> AbstractContextManager[ScratchDatabase]:
        return scratch_database(self._database, self.restore_database, scratch, part)

    def discard(self, part: BackupPart) -> None:
        path = Path(str(part.location["path"]))
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the backup's directory, then the workspace's, once empty
            path.parent.rmdir()
            path.parent.parent.rmdir()
