"""What every provider implements: one small protocol per concern.

Every ``ensure`` is idempotent (create-or-adopt by deterministic names), returns the outputs to
record on the workspace, and says which resources it actually created (so callers can prove
that a workspace was provisioned exactly once). Every ``teardown`` is idempotent too, and
``leftovers`` lists what still exists for a workspace (the leak sweep after deletion).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class ProviderError(RuntimeError):
    """A provisioning step failed; the message is short and never holds a secret."""


@dataclass(frozen=True)
class WorkspaceSpec:
    """What a provider needs to know about a workspace."""

    id: uuid.UUID
    slug: str
    organization_id: uuid.UUID
    tier: str
    region: str
    display_name: str
    cell: str | None = None

    @property
    def short_id(self) -> str:
        """12 hex digits of the id: enough to be unique, short enough for resource names."""
        return self.id.hex[:12]

    @property
    def tags(self) -> dict[str, str]:
        """Tags every cloud resource of the workspace carries."""
        return {
            "canopy:workspace": str(self.id),
            "canopy:org": str(self.organization_id),
            "canopy:tier": self.tier,
            "canopy:cell": self.cell or "",
        }


@dataclass(frozen=True)
class Ensured:
    """Result of an ``ensure``: outputs to record and the resources this call created."""

    outputs: dict[str, Any] = field(default_factory=dict)
    created: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunRelease:
    """What a runtime runs for one workspace-server release."""

    version: str
    image: str
    """The container image (Kubernetes)."""
    command: tuple[str, ...] | None = None
    """The argv the local runtime runs; None: the bundled server (forked by the fork server)."""


@dataclass(frozen=True)
class Observed:
    """What runs, read back from the runtime: the server's own report (its ping) and, on Kubernetes, the images
    its ready Pods run."""

    release: str | None = None
    schema: int | None = None
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServerConfig:
    """How to run a workspace server (everything it is configured with)."""

    database_url: str
    files_dir: str
    public_url: str
    control_token: str
    site_name: str
    team_name: str
    team_display_name: str
    health: HealthReporting | None = None
    release: RunRelease | None = None


HEALTH_CHECK_SECONDS = 30.0


@dataclass(frozen=True)
class HealthReporting:
    """Where and how often a workspace server reports its health (``workspace_server/health_report.py``)."""

    workspace_id: uuid.UUID
    control_plane_url: str
    heartbeat_seconds: float

    def environment(self) -> dict[str, str]:
        """The server's ``WS_*`` variables for it (it checks every 30 s, or each heartbeat if more often)."""
        return {
            "WS_WORKSPACE_ID": str(self.workspace_id),
            "WS_CONTROL_PLANE_URL": self.control_plane_url,
            "WS_HEALTH_REPORT_SECONDS": f"{self.heartbeat_seconds:g}",
            "WS_HEALTH_CHECK_SECONDS": f"{min(HEALTH_CHECK_SECONDS, self.heartbeat_seconds):g}",
        }


class DatabaseProvider(Protocol):
    """A database and a login role of the workspace's own."""

    def ensure(self, ws: WorkspaceSpec) -> Ensured: ...

    def connection_url(self, ws: WorkspaceSpec) -> str:
        """libpq URL the workspace server connects with (holds a password: never record it)."""
        ...

    def teardown(self, ws: WorkspaceSpec) -> None: ...

    def leftovers(self, ws: WorkspaceSpec) -> list[str]: ...


class StorageProvider(Protocol):
    """Where the workspace's files live."""

    def ensure(self, ws: WorkspaceSpec) -> Ensured: ...

    def teardown(self, ws: WorkspaceSpec) -> None: ...

    def leftovers(self, ws: WorkspaceSpec) -> list[str]: ...


class ComputeProvider(Protocol):
    """The running workspace server; outputs include ``internal_url`` (how we reach it)."""

    def ensure(self, ws: WorkspaceSpec, config: ServerConfig) -> Ensured: ...

    def stop(self, ws: WorkspaceSpec) -> None:
        """Stop the server and keep its data (hibernation)."""
        ...

    def observe(self, ws: WorkspaceSpec, outputs: Mapping[str, Any]) -> Observed:
        """What runs now (never assumed from what was asked for)."""
        ...

    def retire(self, ws: WorkspaceSpec) -> None:
        """Stop what no longer serves once the recorded outputs name what does (the local runtime's previous
        server after a release switch; nothing where the runtime replaces servers itself)."""
        ...

    def teardown(self, ws: WorkspaceSpec) -> None: ...

    def leftovers(self, ws: WorkspaceSpec) -> list[str]: ...


class DnsProvider(Protocol):
    """The public name of the workspace; outputs include ``endpoint_url``."""

    def endpoint_url(self, ws: WorkspaceSpec) -> str: ...

    def ensure(self, ws: WorkspaceSpec, outputs: dict[str, Any]) -> Ensured: ...

    def teardown(self, ws: WorkspaceSpec) -> None: ...

    def leftovers(self, ws: WorkspaceSpec) -> list[str]: ...


class ResourceProvider(Protocol):
    """A resource that needs nothing but the workspace (an enterprise silo's key or cluster, the pods' IAM role)."""

    def ensure(self, ws: WorkspaceSpec) -> Ensured: ...

    def teardown(self, ws: WorkspaceSpec) -> None: ...

    def leftovers(self, ws: WorkspaceSpec) -> list[str]: ...


class IngressProvider(Protocol):
    """What receives a workspace's traffic in front of its server (a silo cluster's ingress controller and load
    balancer); ensure takes the outputs so far (the certificate) and outputs ``load_balancer_hostname``."""

    def ensure(self, ws: WorkspaceSpec, outputs: Mapping[str, Any]) -> Ensured: ...

    def teardown(self, ws: WorkspaceSpec) -> None: ...

    def leftovers(self, ws: WorkspaceSpec) -> list[str]: ...


class Probe(Protocol):
    """Whether a provisioned workspace serves."""

    def check(self, ws: WorkspaceSpec, outputs: Mapping[str, Any]) -> None:
        """Raise ProviderError unless the workspace serves."""
        ...


@dataclass(frozen=True)
class BackupPart:
    """One part of a backup as kept: ``database`` or ``files``, where it is, its size and SHA-256 of its bytes.

    ``location`` is the provider's own: ``{"path": ...}`` (local runtime, encrypted file), ``{"bucket", "key",
    "region"}`` (S3 object under SSE-KMS) or ``{"rds_snapshot", "region"}`` (a silo's database; ``sha256`` is None:
    RDS keeps a snapshot's integrity itself). ``count`` is what the part holds: posts (counted in the dump's own
    snapshot) for ``database``, files for ``files``; None when the provider cannot tell.
    """

    name: str
    location: dict[str, Any]
    size: int
    sha256: str | None
    count: int | None = None


@dataclass(frozen=True)
class ScratchDatabase:
    """A backup's database part restored for a restore drill: what it was restored into (``name``), a URL to read it
    through when the control plane can (None: only what the cloud reports about it is checked), and what is wrong
    with it as the cloud reports it."""

    name: str
    url: str | None
    problems: list[str] = field(default_factory=list)


class BackupProvider(Protocol):
    """Copies a workspace's data (its database, then its files: every file a dumped post names is in the copy) to
    backup parts, puts parts back into a workspace (the same one, or a clone), re-reads them and removes them."""

    def back_up_database(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], backup_id: uuid.UUID) -> BackupPart: ...

    def back_up_files(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], backup_id: uuid.UUID) -> BackupPart: ...

    def restore_database(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], part: BackupPart) -> None:
        """Make ``ws``'s database hold exactly the part's content (its server is stopped meanwhile)."""
        ...

    def restore_files(self, ws: WorkspaceSpec, outputs: Mapping[str, Any], part: BackupPart) -> None:
        """Make ``ws``'s files exactly the part's."""
        ...

    def verify(self, part: BackupPart) -> str | None:
        """Re-read the part whole: None when it is intact, else what is wrong (missing, size, checksum)."""
        ...

    def discard(self, part: BackupPart) -> None:
        """Remove the part (idempotent)."""
        ...

    def scratch_restore(self, scratch: WorkspaceSpec, part: BackupPart) -> AbstractContextManager[ScratchDatabase]:
        """Restore the database part into a scratch database named after ``scratch`` (a synthetic spec of the
        backed-up workspace's organization, tier and cell: never a workspace row); torn down on exit whatever
        happened (ProviderError when it does not restore)."""
        ...


class Sweep(Protocol):
    """What the cloud still holds for a workspace, found by its tags (the leak sweep after deletion)."""

    def leftovers(self, ws: WorkspaceSpec, outputs: Mapping[str, Any]) -> list[str]: ...


@dataclass(frozen=True)
class Watched:
    """A converged workspace a drift probe looks after, and when its plan last ran (changes made by others after
    that are drift)."""

    spec: WorkspaceSpec
    verified_at: datetime


@dataclass(frozen=True)
class Drift:
    """What a probe found of a workspace changed or gone behind Canopy's back."""

    workspace_id: uuid.UUID
    source: str
    reason: str


class Cursors(Protocol):
    """Where drift sources left off (a watch's resource version), kept across ticks and workers."""

    def get(self, source: str) -> str | None: ...

    def put(self, source: str, position: str) -> None: ...


class DriftProbe(Protocol):
    """Finds drift cheaply: per change or per cell and service, never one cloud call per workspace."""

    def find_drift(self, watched: Sequence[Watched], cursors: Cursors) -> list[Drift]: ...


@dataclass(frozen=True)
class Providers:
    """The provider set of one deployment kind and tier; the silo-only and cloud-only ones are optional."""

    database: DatabaseProvider
    storage: StorageProvider
    compute: ComputeProvider
    dns: DnsProvider
    kms: ResourceProvider | None = None
    cluster: ResourceProvider | None = None
    identity: ResourceProvider | None = None
    certificate: ResourceProvider | None = None
    ingress: IngressProvider | None = None
    probe: Probe | None = None
    sweep: Sweep | None = None
    backup: BackupProvider | None = None
    drift: tuple[DriftProbe, ...] = ()

    def leftovers(self, ws: WorkspaceSpec, outputs: Mapping[str, Any]) -> list[str]:
        """Everything still present for ``ws`` across all concerns (each line once)."""
        found = [
            *self.compute.leftovers(ws),
            *(self.ingress.leftovers(ws) if self.ingress else []),
            *(self.certificate.leftovers(ws) if self.certificate else []),
            *self.dns.leftovers(ws),
            *self.storage.leftovers(ws),
            *self.database.leftovers(ws),
            *(self.identity.leftovers(ws) if self.identity else []),
            *(self.cluster.leftovers(ws) if self.cluster else []),
            *(self.kms.leftovers(ws) if self.kms else []),
            *(self.sweep.leftovers(ws, outputs) if self.sweep else []),
        ]
        return list(dict.fromkeys(found))
