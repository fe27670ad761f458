"""The data-copy module against the machine's PostgreSQL: dumps restore exactly, packs and parts round-trip, and
any altered byte of an encrypted part is found."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg.conninfo import make_conninfo

from control_plane.credentials.keys import Keyring
from control_plane.providers import data_copy
from control_plane.providers.tenant_database import TenantDatabase
from tests.conftest import ADMIN_URL

SCHEMA = """
CREATE TABLE posts (id bigserial PRIMARY KEY, message text NOT NULL, props jsonb, created timestamptz DEFAULT now());
CREATE INDEX posts_message ON posts (message);
CREATE SEQUENCE counter START 7;
CREATE VIEW long_posts AS SELECT id FROM posts WHERE length(message) > 10;
CREATE SCHEMA extra;
CREATE TABLE extra.notes (n int);
"""


@contextlib.contextmanager
def _admin(dbname: str | None = None) -> Iterator[psycopg.Connection[Any]]:
    conninfo = make_conninfo(ADMIN_URL, dbname=dbname) if dbname else ADMIN_URL
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn


@pytest.fixture
def tenant_url() -> Iterator[Callable[[], str]]:
    """Factory: a workspace-like role and database (made as the local provider makes them); its URL as the role."""
    made: list[TenantDatabase] = []

    def make() -> str:
        name = f"ws_t{uuid.uuid4().hex[:11]}"
        password = Fernet.generate_key().decode()
        tenant = TenantDatabase(_admin, uuid.uuid4(), name)
        tenant.ensure(password, 10, ())
        made.append(tenant)
        return make_conninfo(ADMIN_URL, dbname=name, user=name, password=password)

    yield make
    for tenant in made:
        tenant.teardown()


def _fingerprint(url: str) -> dict[str, Any]:
    """Everything a restore must reproduce: relations, columns, rows, sequence positions."""
    with psycopg.connect(url) as conn:
        relations = conn.execute(
            "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
            " ORDER BY 1, 2"
        ).fetchall()
        columns = conn.execute(
            "SELECT table_schema, table_name, column_name, data_type, column_default FROM information_schema.columns"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, 3"
        ).fetchall()
        posts = conn.execute("SELECT id, message, props::text, created FROM posts ORDER BY id").fetchall()
        notes = conn.execute("SELECT n FROM extra.notes ORDER BY n").fetchall()
        sequences = (
            conn.execute("SELECT last_value, is_called FROM posts_id_seq").fetchone(),
            conn.execute("SELECT last_value, is_called FROM counter").fetchone(),
        )
        public_open = conn.execute("SELECT has_schema_privilege('public', 'public', 'USAGE')").fetchone()
    return {
        "relations": relations,
        "columns": columns,
        "posts": posts,
        "notes": notes,
        "sequences": sequences,
        "public_open": public_open,
    }


def _seed(url: str, posts: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(SCHEMA)  # type: ignore[arg-type]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO posts (message, props) VALUES (%s, %s)",
                [(f"message number {i} ✓", f'{{"k": {i}}}') for i in range(posts)],
            )
        conn.execute("INSERT INTO extra.notes SELECT generate_series(1, 50)")
        conn.execute("SELECT nextval('counter'), nextval('counter')")


def _dump(url: str) -> tuple[bytes, int | None]:
    with data_copy.dump_database(url, "SELECT count(*) FROM posts") as dump:
        return b"".join(dump.chunks), dump.count


def test_dump_restores_exactly_into_another_database_and_in_place(tenant_url: Callable[[], str]) -> None:
    source, clone = tenant_url(), tenant_url()
    _seed(source, 300)
    expected = _fingerprint(source)
    with data_copy.dump_database(source, "SELECT count(*) FROM posts") as dump:
        # Written after the snapshot was exported: neither in the dump nor in its count.
        with psycopg.connect(source) as conn:
            conn.execute("INSERT INTO posts (message) SELECT 'later' FROM generate_series(1, 25)")
        archive = b"".join(dump.chunks)
    assert dump.count == 300
    # Sequences are not transactional: the dump holds their position when it read them, never behind the rows.
    expected["sequences"] = ((325, True), expected["sequences"][1])

    with psycopg.connect(clone) as conn:  # a clone that already holds something else
        conn.execute("CREATE TABLE stray (x int); CREATE SCHEMA junk; CREATE TABLE junk.t (y int)")
    data_copy.restore_database(clone, [archive[i : i + 4096] for i in range(0, len(archive), 4096)])
    assert _fingerprint(clone) == expected

    with psycopg.connect(source) as conn:  # in place, after more changes of data and schema
        conn.execute("ALTER TABLE posts ADD COLUMN edited boolean; DELETE FROM posts WHERE id < 10")
    data_copy.restore_database(source, [archive])
    assert _fingerprint(source) == expected
    again, count = _dump(source)  # a restored database backs up and restores again
    data_copy.restore_database(clone, [again])
    assert count == 300 and _fingerprint(clone) == expected


def test_a_database_no_server_initialised_backs_up_with_no_count(tenant_url: Callable[[], str]) -> None:
    """A workspace deleted before its server ever started still gets its final backup: nothing to count, and the
    dump restores (to an empty database)."""
    source, clone = tenant_url(), tenant_url()
    archive, count = _dump(source)
    assert count is None
    with psycopg.connect(clone) as conn:
        conn.execute("CREATE TABLE stray (x int)")
    data_copy.restore_database(clone, [archive])
    with psycopg.connect(clone) as conn:
        assert conn.execute("SELECT to_regclass('stray')").fetchone() == (None,)


def test_a_failed_restore_says_why_and_a_new_one_starts_from_scratch(tenant_url: Callable[[], str]) -> None:
    source, target = tenant_url(), tenant_url()
    _seed(source, 20)
    archive, _ = _dump(source)
    with pytest.raises(data_copy.DataCopyError, match="pg_restore failed"):
        data_copy.restore_database(target, [archive[: len(archive) // 2]])
    data_copy.restore_database(target, [archive])
    assert _fingerprint(target) == _fingerprint(source)


def test_no_password_in_the_tools_argv() -> None:
    conninfo, env = data_copy._libpq("postgresql://ws_x:s3cret-pw@127.0.0.1:5432/ws_x")
    assert "s3cret" not in conninfo and env["PGPASSWORD"] == "s3cret-pw"


def test_the_tools_match_the_server() -> None:
    with psycopg.connect(ADMIN_URL) as conn:
        major = conn.info.server_version // 10000
    tools = data_copy.pg_tools(major)
    assert tools.major == major and tools.pg_dump.is_file() and tools.pg_restore.is_file()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pack_round_trip_through_a_directory(tmp_path: Path) -> None:
    source = tmp_path / "files"
    sizes = {"a/b/c.bin": 1_048_579, "a/empty": 0, "exact-block": 512, "top.txt": 11, "z/ünïcode name.png": 70_000}
    for name, size in sizes.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(os.urandom(size))
    target = tmp_path / "restored"
    (target / "old").mkdir(parents=True)
    (target / "old" / "stale.txt").write_text("not in the pack")

    meter = data_copy.Meter()
    packed = b"".join(meter.wrap(data_copy.pack_files(data_copy.directory_members(source))))
    assert meter.size == len(packed) and len(meter.sha256) == 64
    count = data_copy.unpack_to_directory([packed[i : i + 999] for i in range(0, len(packed), 999)], target)

    assert count == len(sizes) and _tree(target) == _tree(source)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_pack_with_an_escaping_name_is_refused(tmp_path: Path) -> None:
    member = data_copy.FileMember("../evil", 3, lambda: [b"bad"])
    with pytest.raises(data_copy.CorruptPart):
        b"".join(data_copy.pack_files([member]))


KEYS = Keyring((Fernet.generate_key().decode(),))


def _encrypted(plain: bytes) -> bytes:
    pieces = [plain[i : i + 300_000] for i in range(0, len(plain), 300_000)]
    return b"".join(data_copy.encrypt(pieces, KEYS))


def test_encryption_round_trip_in_any_chunking() -> None:
    for plain in (b"", b"x", os.urandom(3 * data_copy.CHUNK + 5)):
        sealed = _encrypted(plain)
        assert len(plain) < 1000 or plain[:1000] not in sealed
        for step in (7, 65_536, len(sealed) or 1):
            assert (
                b"".join(data_copy.decrypt([sealed[i : i + step] for i in range(0, len(sealed), step)], KEYS)) == plain
            )


def test_a_flipped_byte_anywhere_is_reported() -> None:
    sealed = _encrypted(os.urandom(2 * data_copy.CHUNK + 100))
    for position in (0, len(data_copy.MAGIC) + 2, len(data_copy.MAGIC) + 40, 400, data_copy.CHUNK, len(sealed) - 1):
        altered = bytearray(sealed)
        altered[position] ^= 0x01
        with pytest.raises(data_copy.CorruptPart):
            b"".join(data_copy.decrypt([bytes(altered)], KEYS))


def test_truncation_reordering_and_a_foreign_key_are_reported() -> None:
    records = list(data_copy.encrypt([b"a" * data_copy.CHUNK, b"b" * data_copy.CHUNK, b"c"], KEYS))
    header, first, second, last = records
    for parts in ([header, first, second], [header, second, first, last], [header, first, second, last, b"x"]):
        with pytest.raises(data_copy.CorruptPart):
            b"".join(data_copy.decrypt(parts, KEYS))
    with pytest.raises(data_copy.CorruptPart, match="data key"):
        b"".join(data_copy.decrypt(records, Keyring((Fernet.generate_key().decode(),))))
