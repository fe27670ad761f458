"""A workspace's login role and database on a shared PostgreSQL server: the local provider's (the control
plane's own server) and a pooled cell's (Aurora). One module, so both isolate tenants the same way:

- role ``name``: LOGIN, a connection limit, the workspace's stored password. The admin makes itself a member, so
  that an admin which is no superuser (a cell's) may hand the role a database and drop it later (PostgreSQL 16
  gives a role's creator no usable membership by default);
- database ``name``, owned by the role; ``CONNECT``/``TEMPORARY`` revoked from ``PUBLIC`` on it and on the
  server's shared databases, and everything on its ``public`` schema, so no other workspace's role gets in;
- the role's comment holds a digest of its password: a role whose password is not the stored one (a workspace
  provisioned before credentials were stored, a run that died in between) gets it set again, and an unchanged
  one costs no catalog write.

Catalog changes of one workspace run under a session advisory lock on its id; ACL changes under one server-wide
lock, because concurrent ACL updates of one database fail ("tuple concurrently updated").
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from control_plane.providers.base import Ensured

Connect = Callable[[str | None], AbstractContextManager[psycopg.Connection[Any]]]
"""An autocommit admin session on the server's admin database (``None``) or on the named one."""

ACL_LOCK = "canopy:database-acl"


def _one(conn: psycopg.Connection[Any], query: LiteralString, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _lock(conn: psycopg.Connection[Any], key: str) -> None:
    """Session advisory lock (released with the connection): one catalog change per key at a time."""
    conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [key])


def password_marker(name: str, password: str) -> str:
    """The role comment that says which password it has (a digest of a random secret: reveals nothing)."""
    return "canopy password sha256:" + hashlib.sha256(f"{name}:{password}".encode()).hexdigest()[:32]


BROKEN_TENANTS_QUERY = """
SELECT n.name, coalesce(r.rolcanlogin, false), d.owner
  FROM unnest(%s::text[]) AS n(name)
  LEFT JOIN pg_roles r ON r.rolname = n.name
  LEFT JOIN (SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database) d ON d.datname = n.name
"""


def broken_tenants(conn: psycopg.Connection[Any], names: Sequence[str]) -> dict[str, str]:
    """Of the tenants ``names`` on this server, those whose login role or owned database is gone, with why (one
    query, whatever their number)."""
    broken = {}
    for name, can_login, owner in conn.execute(BROKEN_TENANTS_QUERY, [list(names)]):
        if not can_login:
            broken[name] = f"role {name} is missing or cannot log in"
        elif owner != name:
            broken[name] = f"database {name} is missing or not owned by its role"
    return broken


class TenantDatabase:
    """Role and database ``name`` of workspace ``workspace_id`` on the server that ``connect`` reaches."""

    def __init__(self, connect: Connect, workspace_id: uuid.UUID, name: str) -> None:
        self._connect = connect
        self._name = name
        self._lock_key = f"canopy:{workspace_id}:database"

    def ensure(self, password: str, connection_limit: int, shared_databases: Sequence[str]) -> Ensured:
        """Create or repair the role and database; ``shared_databases`` lose ``PUBLIC`` access too."""
        created: list[str] = []
        with self._connect(None) as conn:
            _lock(conn, self._lock_key)
            created += ["role"] if self._ensure_role(conn, password, connection_limit) else []
            created += ["database"] if self._ensure_database(conn) else []
            for dbname in (self._name, *shared_databases):
                self._revoke_public_connect(conn, dbname)
        with self._connect(self._name) as conn:
            if _one(conn, "SELECT has_schema_privilege('public', 'public', 'USAGE')"):
                conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        return Ensured({"database_name": self._name, "database_role": self._name}, tuple(created))

    def _ensure_role(self, conn: psycopg.Connection[Any], password: str, connection_limit: int) -> bool:
        """Create (or repair) the login role; True if it was created."""
        name = sql.Identifier(self._name)
        marker = password_marker(self._name, password)
        current = conn.execute(
            "SELECT rolcanlogin, rolconnlimit, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
            [self._name],
        ).fetchone()
        if current != (True, connection_limit, marker):
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT {}").format(
                    sql.SQL("ALTER" if current else "CREATE"), name, sql.Literal(password), connection_limit
                )
            )
            conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(name, sql.Literal(marker)))
        if not _one(conn, "SELECT pg_has_role(current_user, %s, 'USAGE')", self._name):
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(name))
        return current is None

    def _ensure_database(self, conn: psycopg.Connection[Any]) -> bool:
        owner = _one(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", self._name)
        if owner == self._name:
            return False
        statement = "ALTER DATABASE {} OWNER TO {}" if owner else "CREATE DATABASE {} OWNER {}"
        conn.execute(sql.SQL(statement).format(sql.Identifier(self._name), sql.Identifier(self._name)))
        return owner is None

    @staticmethod
    def _revoke_public_connect(conn: psycopg.Connection[Any], dbname: str) -> None:
        """``REVOKE CONNECT, TEMPORARY ... FROM PUBLIC`` unless already done (or there is no such database)."""
        check = (
            "SELECT has_database_privilege('public', datname, 'CONNECT') OR has_database_privilege('public', datname,"
            " 'TEMP') FROM pg_database WHERE datname = %s"
        )
        if not _one(conn, check, dbname):
            return
        _lock(conn, ACL_LOCK)
        if _one(conn, check, dbname):
            conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))

    def teardown(self) -> None:
        """End the role's sessions, drop the database and the role (idempotent)."""
        name = sql.Identifier(self._name)
        with self._connect(None) as conn:
            _lock(conn, self._lock_key)
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s OR usename = %s",
                [self._name, self._name],
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(name))

    def leftovers(self) -> list[str]:
        """The role and the database, if they still exist."""
        role_exists = "SELECT 1 FROM pg_roles WHERE rolname = %s"
        with self._connect(None) as conn:
            found = [f"role {self._name}"] if _one(conn, role_exists, self._name) else []
            if _one(conn, "SELECT 1 FROM pg_database WHERE datname = %s", self._name):
                found.append(f"database {self._name}")
        return found
