"""Which steps provision a workspace, per provider and tier, as data.

- local (every tier): database, storage, restore, compute, dns, initial_admin, available, retire, observe,
  plan (:data:`.steps.STEPS`).
- aws, enterprise (a silo): kms, storage, database, restore, cluster, identity, certificate, ingress, compute,
  initial_admin, dns, available, observe, plan.
- aws, professional (pooled in a cell): database, storage, restore, identity, compute, initial_admin, dns, available,
  observe, plan.

``compute`` runs the workspace's desired release (:mod:`control_plane.releases`); ``observe`` reads back which
release runs and records it (``observed_release``, ``schema_revision``). Locally, a release switch starts the new
server beside the old one (blue/green); ``retire`` stops the old one once the outputs naming the new one are
recorded (:class:`control_plane.providers.local.LocalCompute`).

``restore`` puts a backup into a clone made from it before its server first starts (nothing otherwise:
:mod:`control_plane.backups.restoring`).

``plan`` tells the server its billing plan (trial end, suspension: :mod:`control_plane.subscriptions`).

``identity`` is the IAM role the workspace's pods assume through the cluster's OIDC provider (EKS IAM roles for
service accounts), carrying the workspace's storage policy; compute annotates the pods' service account with it.

``certificate`` is the silo workspace's ACM certificate, DNS-validated in the silo zone; ``ingress`` installs the
silo cluster's ingress controller behind an NLB that ends TLS with that certificate and waits for the load
balancer's address (:mod:`control_plane.kube.ingress_controller`); compute then waits for the controller to publish
that address on the workspace's Ingress, and ``dns`` points the workspace's name at it. Torn down in reverse: the
load balancer goes (and lets the certificate go) before the certificate is deleted.

On Kubernetes the control plane cannot call the pods, so the compute step hands the initial admin over in the
server's Secret (the server creates it at start), and ``initial_admin`` forgets the password hash once that
rollout is complete and applies the Secret again without it. ``available`` asks the compute provider's probe
(rollout complete, ping through the public URL). Teardown runs a plan in reverse; the leak sweep follows (see
``tasks.delete``).
"""

from __future__ import annotations

from typing import TypeVar

from control_plane.kube.render import InitialAdmin, KubeServerConfig, S3Config
from control_plane.providers.base import Ensured, ProviderError
from control_plane.providers.workspace_client import admin_username
from control_plane.reconciler.steps import (
    OBSERVE,
    RESTORE,
    STEPS,
    Context,
    Step,
    control_token,
    ensure_database,
    ensure_dns,
    ensure_plan,
    ensure_storage,
    health_reporting,
    teardown_compute,
    teardown_database,
    teardown_dns,
    teardown_storage,
)
from control_plane.workspaces.models import LATE_ADMIN_OUTPUT
from infra.conventions import TIER_ENTERPRISE, TIER_PROFESSIONAL

T = TypeVar("T")


def _provided(provider: T | None, what: str) -> T:
    if provider is None:
        raise ProviderError(f"this deployment has no {what} provider")
    return provider


def ensure_kms(ctx: Context) -> Ensured:
    return _provided(ctx.providers.kms, "key").ensure(ctx.spec)


def teardown_kms(ctx: Context) -> None:
    _provided(ctx.providers.kms, "key").teardown(ctx.spec)


def ensure_cluster(ctx: Context) -> Ensured:
    return _provided(ctx.providers.cluster, "cluster").ensure(ctx.spec)


def teardown_cluster(ctx: Context) -> None:
    _provided(ctx.providers.cluster, "cluster").teardown(ctx.spec)


def ensure_identity(ctx: Context) -> Ensured:
    return _provided(ctx.providers.identity, "workload identity").ensure(ctx.spec)


def teardown_identity(ctx: Context) -> None:
    _provided(ctx.providers.identity, "workload identity").teardown(ctx.spec)


def ensure_certificate(ctx: Context) -> Ensured:
    return _provided(ctx.providers.certificate, "certificate").ensure(ctx.spec)


def teardown_certificate(ctx: Context) -> None:
    _provided(ctx.providers.certificate, "certificate").teardown(ctx.spec)


def ensure_ingress(ctx: Context) -> Ensured:
    return _provided(ctx.providers.ingress, "ingress").ensure(ctx.spec, ctx.outputs)


def teardown_ingress(ctx: Context) -> None:
    _provided(ctx.providers.ingress, "ingress").teardown(ctx.spec)


def _initial_admin(ctx: Context) -> InitialAdmin | None:
    if not (ctx.admin_email and ctx.admin_password_hash):
        return None
    return InitialAdmin(ctx.admin_email, admin_username(ctx.admin_email), ctx.admin_password_hash)


def kube_server_config(ctx: Context) -> KubeServerConfig:
    """The server's whole configuration: database, files in S3 under the workspace's key, the IAM role its pods
    assume, the initial admin."""
    spec, outputs = ctx.spec, ctx.outputs
    return KubeServerConfig(
        database_url=ctx.providers.database.connection_url(spec),
        files_dir="",
        public_url=ctx.providers.dns.endpoint_url(spec),
        control_token=control_token(spec),
        site_name=spec.display_name,
        team_name=spec.slug,
        team_display_name=spec.display_name,
        s3=S3Config(
            bucket=str(outputs["bucket"]),
            prefix=str(outputs["bucket_prefix"]),
            kms_key_id=str(outputs["kms_key_arn"]),
            region=str(outputs["region"]),
        ),
        initial_admin=_initial_admin(ctx),
        workload_role_arn=outputs.get("workload_role_arn"),
        late_admin=outputs.get(LATE_ADMIN_OUTPUT),
        health=health_reporting(ctx, ctx.settings.kube_control_plane_url),
        release=ctx.release,
        image=ctx.release.image if ctx.release else "",
    )


def ensure_kube_compute(ctx: Context) -> Ensured:
    return ctx.providers.compute.ensure(ctx.spec, kube_server_config(ctx))


def ensure_admin_handed_over(ctx: Context) -> Ensured:
    """The rollout that carried the initial admin is complete, so the server made it at start: forget the hash and
    apply the server's objects again without it, so that it leaves the Secret now (the pods do not restart: the
    initial admin is not in their configuration's checksum). A converged workspace is not reconciled again until
    drift or its re-verification, so this cannot wait for a later pass."""
    if not ctx.admin_password_hash:
        return Ensured()
    if ctx.forget_admin_hash is not None:
        ctx.forget_admin_hash(ctx.spec.id)
    ctx.admin_password_hash = None
    ensure_kube_compute(ctx)
    return Ensured(created=("initial_admin",))


def ensure_plan_over_http(ctx: Context) -> Ensured:
    """The plan goes to the server over its public URL, the path the availability probe checks; a deployment
    that cannot reach its workspaces over HTTP (``aws_probe_http`` off) cannot tell them."""
    return ensure_plan(ctx) if ctx.settings.aws_probe_http else Ensured()


def ensure_serving(ctx: Context) -> Ensured:
    _provided(ctx.providers.probe, "probe").check(ctx.spec, ctx.outputs)
    return Ensured()


IDENTITY = Step("identity", "IdentityReady", ensure_identity, teardown_identity)
COMPUTE = Step("compute", "ComputeReady", ensure_kube_compute, teardown_compute)
HANDOVER = Step("initial_admin", None, ensure_admin_handed_over)
DNS = Step("dns", "DnsReady", ensure_dns, teardown_dns)
AVAILABLE = Step("available", "Available", ensure_serving)
PLAN = Step("plan", None, ensure_plan_over_http)

ENTERPRISE: tuple[Step, ...] = (
    Step("kms", "KeyReady", ensure_kms, teardown_kms),
    Step("storage", "StorageReady", ensure_storage, teardown_storage),
    Step("database", "DatabaseReady", ensure_database, teardown_database),
    RESTORE,
    Step("cluster", "ClusterReady", ensure_cluster, teardown_cluster),
    IDENTITY,
    Step("certificate", "CertificateReady", ensure_certificate, teardown_certificate),
    Step("ingress", "IngressReady", ensure_ingress, teardown_ingress),
    COMPUTE,
    HANDOVER,
    DNS,
    AVAILABLE,
    OBSERVE,
    PLAN,
)

PROFESSIONAL: tuple[Step, ...] = (
    Step("database", "DatabaseReady", ensure_database, teardown_database),
    Step("storage", "StorageReady", ensure_storage, teardown_storage),
    RESTORE,
    IDENTITY,
    COMPUTE,
    HANDOVER,
    DNS,
    AVAILABLE,
    OBSERVE,
    PLAN,
)


PLANS: dict[tuple[str, str], tuple[Step, ...]] = {
    ("local", TIER_PROFESSIONAL): STEPS,
    ("local", TIER_ENTERPRISE): STEPS,
    ("aws", TIER_PROFESSIONAL): PROFESSIONAL,
    ("aws", TIER_ENTERPRISE): ENTERPRISE,
}


def plan_for(provider: str, tier: str) -> tuple[Step, ...]:
    """The steps that provision a workspace of ``tier`` with ``provider``, in order."""
    return PLANS[provider, tier]


RELEASE_STEPS = frozenset({"compute", "initial_admin", "available", "retire", "observe", "plan"})


def release_plan_for(provider: str, tier: str) -> tuple[Step, ...]:
    """The steps a release change needs, in plan order: the server's deployment, its availability, reading back
    what runs (the rest of the plan, from the recorded outputs, is unchanged by a release)."""
    return tuple(step for step in plan_for(provider, tier) if step.name in RELEASE_STEPS)
