"""The AWS provider objects of a deployment, built from settings (for ``providers/factory.py``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from control_plane.core.settings import Settings
from control_plane.credentials.service import WorkspaceSecrets, workspace_secret
from control_plane.providers.aws.acm import SiloCertificate
from control_plane.providers.aws.backup_store import BackupBucket
from control_plane.providers.aws.backups import PooledBackups, SiloBackups, silo_backups_left
from control_plane.providers.aws.common import Aws, CellLookup, SiloConfig, Waits
from control_plane.providers.aws.eks import SiloCluster
from control_plane.providers.aws.iam import PooledIdentity, SiloIdentity
from control_plane.providers.aws.kms import SiloKms
from control_plane.providers.aws.postgres import PooledDatabase
from control_plane.providers.aws.rds import SiloDatabase
from control_plane.providers.aws.route53 import PooledDns, SiloDns
from control_plane.providers.aws.s3 import PooledStorage, SiloStorage


@dataclass(frozen=True)
class SiloProviders:
    """An enterprise silo, in step order: key, bucket, database, cluster, the pods' role, TLS certificate, name; and
    its backups (the ingress controller and the workspace server on the cluster are :mod:`.fleet`'s)."""

    kms: SiloKms
    storage: SiloStorage
    database: SiloDatabase
    cluster: SiloCluster
    identity: SiloIdentity
    certificate: SiloCertificate
    dns: SiloDns
    backup: SiloBackups


@dataclass(frozen=True)
class PooledProviders:
    """A professional workspace in its cell: database, bucket prefix, the pods' role, name; and its backups."""

    database: PooledDatabase
    storage: PooledStorage
    identity: PooledIdentity
    dns: PooledDns
    backup: PooledBackups


def silo_providers(settings: Settings, aws: Aws) -> SiloProviders:
    """Silo providers configured by the ``aws_*`` settings."""
    config = SiloConfig.from_settings(settings)
    store = BackupBucket(aws, config.env)
    kms = SiloKms(aws, config, functools.partial(silo_backups_left, aws, store, config))
    cluster = SiloCluster(aws, config, kms)
    database = SiloDatabase(aws, config, kms)
    return SiloProviders(
        kms=kms,
        storage=SiloStorage(aws, config, kms),
        database=database,
        cluster=cluster,
        identity=SiloIdentity(aws, config, kms, cluster),
        certificate=SiloCertificate(aws, config),
        dns=SiloDns(aws, config),
        backup=SiloBackups(aws, store, config, database),
    )


def pooled_providers(
    settings: Settings, aws: Aws, cells: CellLookup, secrets: WorkspaceSecrets = workspace_secret
) -> PooledProviders:
    """Pooled providers configured by the ``cell_*`` settings; ``cells`` reads a cell's outputs by name,
    ``secrets`` a workspace's stored credentials."""
    waits = Waits(settings.aws_wait_timeout_seconds, settings.aws_poll_seconds)
    database = PooledDatabase(
        aws,
        settings.aws_environment,
        cells,
        secrets,
        sslmode=settings.cell_postgres_sslmode,
        connection_limit=settings.cell_database_connection_limit,
    )
    return PooledProviders(
        database=database,
        storage=PooledStorage(aws, settings.aws_environment, cells),
        identity=PooledIdentity(aws, settings.aws_environment, cells),
        dns=PooledDns(aws, cells, settings.cell_ingress_label, waits),
        backup=PooledBackups(aws, BackupBucket(aws, settings.aws_environment), database),
    )
