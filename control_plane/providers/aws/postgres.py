"""A pooled workspace's database and login role on its cell's shared PostgreSQL (Aurora), made by
:mod:`control_plane.providers.tenant_database` (as the local provider's).

The admin credentials come from the cell's admin secret (``postgres_admin_secret_arn``): the JSON
RDS keeps there (``username``, ``password``; ``host``, ``port`` and ``dbname`` when present win over
the cell's registered endpoint). The workspace's own password is its stored database credential (random,
encrypted in the control plane's database), so every retry uses the same one. The admin credentials are
reused for :data:`ADMIN_SECRET_SECONDS` before the secret is read again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.conninfo import make_conninfo

from control_plane.credentials.models import Purpose
from control_plane.credentials.service import WorkspaceSecrets
from control_plane.providers.aws.common import Aws, CellLookup, Expiring, cell_name
from control_plane.providers.base import Cursors, Drift, Ensured, Watched, WorkspaceSpec
from control_plane.providers.tenant_database import TenantDatabase, broken_tenants
from infra.conventions import CellOutputs, workspace_names

ADMIN_SECRET_SECONDS = 60.0  # how long a cell's admin credentials are reused before the secret is read again


def _url(user: str, password: str, host: str, port: int, dbname: str, sslmode: str) -> str:
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"postgresql://{auth}@{host}:{port}/{quote(dbname, safe='')}?sslmode={sslmode}"


class PooledDatabase:
    """Role and database ``ws_<short id>`` on the cell's server: the role logs in with a connection limit and
    owns only its database; ``PUBLIC`` loses access to it and to the admin database.
    """

    def __init__(
        self, aws: Aws, env: str, cells: CellLookup, secrets: WorkspaceSecrets, *, sslmode: str, connection_limit: int
    ) -> None:
        self._aws = aws
        self._env = env
        self._cells = cells
        self._secrets = secrets
        self._sslmode = sslmode
        self._connection_limit = connection_limit
        self._admins = Expiring(self._read_admin, ADMIN_SECRET_SECONDS)

    def _name(self, ws: WorkspaceSpec) -> str:
        return workspace_names(self._env, ws.id).pooled_database

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
        password = self._secrets(ws.id, Purpose.database)
        return _url(name, password, admin["host"], admin["port"], name, self._sslmode)

    @contextlib.contextmanager
    def _connect(self, admin: dict[str, Any], dbname: str | None) -> Iterator[psycopg.Connection[Any]]:
        """Autocommit admin session on the admin database (or on ``dbname``)."""
        params = admin | {"sslmode": self._sslmode} | ({"dbname": dbname} if dbname else {})
        with psycopg.connect(make_conninfo(**params), autocommit=True) as conn:
            yield conn

    def _tenant(self, ws: WorkspaceSpec) -> TenantDatabase:
        return TenantDatabase(functools.partial(self._connect, self._admin(ws)), ws.id, self._name(ws))

    def ensure(self, ws: WorkspaceSpec) -> Ensured:
        password = self._secrets(ws.id, Purpose.database)
        return self._tenant(ws).ensure(password, self._connection_limit, (self._admin(ws)["dbname"],))

    def teardown(self, ws: WorkspaceSpec) -> None:
        self._tenant(ws).teardown()

    def leftovers(self, ws: WorkspaceSpec) -> list[str]:
        return self._tenant(ws).leftovers()

    def find_drift(self, watched: Sequence[Watched], cursors: Cursors) -> list[Drift]:
        """One query per cell's server: a workspace whose role or database is gone."""
        by_cell: dict[str, dict[str, uuid.UUID]] = defaultdict(dict)
        for item in watched:
            by_cell[cell_name(item.spec)][self._name(item.spec)] = item.spec.id
        found = []
        for cell, names in by_cell.items():
            with self._connect(self._admins(cell), None) as conn:
                broken = broken_tenants(conn, list(names))
            found += [Drift(names[name], "postgresql", reason) for name, reason in broken.items()]
        return found
