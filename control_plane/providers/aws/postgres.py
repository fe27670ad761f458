"""A pooled workspace's database and login role on its cell's shared PostgreSQL (Aurora).

The admin credentials come from the cell's admin secret (``postgres_admin_secret_arn``): the JSON
RDS keeps there (``username``, ``password``; ``host``, ``port`` and ``dbname`` when present win over
the cell's registered endpoint). The workspace's own password is derived from ``CANOPY_SECRET_KEY``
(as in the local provider), so nothing is stored and every retry derives the same one. The admin
credentials are reused for :data:`ADMIN_SECRET_SECONDS` before the secret is read again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, LiteralString
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from control_plane.core.security import derive_secret
from control_plane.providers.aws.common import Aws, CellLookup, Expiring, cell_name
from control_plane.providers.base import Ensured, WorkspaceSpec
from infra.conventions import CellOutputs, workspace_names

ACL_LOCK = "canopy:database-acl"
ADMIN_SECRET_SECONDS = 60.0  # how long a cell's admin credentials are reused before the secret is read again


def _url(user: str, password: str, host: str, port: int, dbname: str, sslmode: str) -> str:
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"postgresql://{auth}@{host}:{port}/{quote(dbname, safe='')}?sslmode={sslmode}"


def _one(conn: psycopg.Connection[Any], query: LiteralString, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


class PooledDatabase:
    """Role and database ``ws_<short id>``: the role logs in with a connection limit and owns only its
    database; ``CONNECT``/``TEMPORARY`` on it and on the admin database are revoked from ``PUBLIC``, and
    so is everything on its ``public`` schema, so no other workspace's role can get in.
    """

    def __init__(self, aws: Aws, env: str, cells: CellLookup, *, sslmode: str, connection_limit: int) -> None:
        self._aws = aws
        self._env = env
        self._cells = cells
        self._sslmode = sslmode
        self._connection_limit = connection_limit
        self._admins = Expiring(self._read_admin, ADMIN_SECRET_SECONDS)

    def _name(self, ws: WorkspaceSpec) -> str:
        return workspace_names(self._env, ws.id).pooled_database

    def _password(self, ws: WorkspaceSpec) -> str:
        return derive_secret("workspace-db", str(ws.id))

    def _admin(self, ws: WorkspaceSpec) -> dict[str, Any]:
        """The cell's admin connection parameters (user, password, host, port, dbname)."""
        return self._admins(cell_name(ws))

    def _read_admin(self, cell_name: str) -> dict[str, Any]:
        cell: CellOutputs = self._cells(cell_name)
        sm = self._aws.client("secretsmanager", cell.region)
        value = json.loads(sm.get_secret_value(SecretId=cell.postgres_admin_secret_arn)["SecretString"])
        return {
            "user": str(value["username"]),
            "password": str(value["password"]),
            "host": str(value.get("host") or cell.postgres_host),
            "port": int(value.get("port") or cell.postgres_port),
            "dbname": str(value.get("dbname") or "postgres"),
        }

    def connection_url(self, ws: WorkspaceSpec) -> str:
        admin = self._admin(ws)
        name = self._name(ws)
        return _url(name, self._password(ws), admin["host"], admin["port"], name, self._sslmode)

    @contextlib.contextmanager
    def _connect(self, admin: dict[str, Any], dbname: str | None = None) -> Iterator[psycopg.Connection[Any]]:
        """Autocommit admin session on the admin database (or on ``dbname``)."""
        params = admin | {"sslmode": self._sslmode} | ({"dbname": dbname} if dbname else {})
        with psycopg.connect(make_conninfo(**params), autocommit=True) as conn:
            yield conn

    @staticmethod
    def _lock(conn: psycopg.Connection[Any], key: str) -> None:
        """Session advisory lock (released with the connection): one catalog change per key at a time."""
        conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [key])

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        name = self._name(ws)
        admin = self._admin(ws)
        created: list[str] = []
        with self._connect(admin) as conn:
            self._lock(conn, f"canopy:{ws.id}:database")
            created += ["role"] if self._ensure_role(conn, name, self._password(ws)) else []
            created += ["database"] if self._ensure_database(conn, name) else []
            self._revoke_public_connect(conn, name)
            self._revoke_public_connect(conn, admin["dbname"])
        with self._connect(admin, dbname=name) as conn:
            if _one(conn, "SELECT has_schema_privilege('public', 'public', 'USAGE')"):
                conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        return Ensured({"database_name": name, "database_role": name}, tuple(created))

    def _ensure_role(self, conn: psycopg.Connection[Any], name: str, password: str) -> bool:
        """Create (or repair) the login role; True if it was created.

        The cell's admin is no superuser: it makes itself a member of the role so that it may hand it
        a database and drop it later (PostgreSQL 16 gives a role's creator no membership by default).
        """
        current = conn.execute("SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = %s", [name]).fetchone()
        if current != (True, self._connection_limit):
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT {}").format(
                    sql.SQL("ALTER" if current else "CREATE"),
                    sql.Identifier(name),
                    sql.Literal(password),
                    sql.Literal(self._connection_limit),
                )
            )
        if not _one(conn, "SELECT pg_has_role(current_user, %s, 'USAGE')", name):
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(name)))
        return current is None

    def _ensure_database(self, conn: psycopg.Connection[Any], name: str) -> bool:
        owner = _one(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", name)
        if owner == name:
            return False
        statement = "ALTER DATABASE {} OWNER TO {}" if owner else "CREATE DATABASE {} OWNER {}"
        conn.execute(sql.SQL(statement).format(sql.Identifier(name), sql.Identifier(name)))
        return owner is None

    def _revoke_public_connect(self, conn: psycopg.Connection[Any], dbname: str) -> None:
        """``REVOKE CONNECT, TEMPORARY ... FROM PUBLIC`` unless done; under a server-wide lock, because
        concurrent ACL updates of one database fail ("tuple concurrently updated").
        """
        check = "SELECT has_database_privilege('public', %s, 'CONNECT') OR has_database_privilege('public', %s, 'TEMP')"
        if not _one(conn, check, dbname, dbname):
            return
        self._lock(conn, ACL_LOCK)
        if _one(conn, check, dbname, dbname):
            conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))

    def teardown(self, ws: WorkspaceSpec) -> None:
        name = self._name(ws)
        with self._connect(self._admin(ws)) as conn:
            self._lock(conn, f"canopy:{ws.id}:database")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        name = self._name(ws)
        with self._connect(self._admin(ws)) as conn:
            found = [f"role {name}"] if _one(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", name) else []
            if _one(conn, "SELECT 1 FROM pg_database WHERE datname = %s", name):
                found.append(f"database {name}")
        return found
