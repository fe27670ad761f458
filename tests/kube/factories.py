"""Workspaces, server configurations and deploy settings for the Kubernetes deployer tests."""

from __future__ import annotations

import uuid

from control_plane.kube.render import DeploySettings, KubeServerConfig
from control_plane.providers.base import WorkspaceSpec

IMAGE = "registry.test/canopy/workspace-server:1.0.0"


def workspace(tier: str = "professional", slug: str = "acme") -> WorkspaceSpec:
    """A new workspace (fresh id, so its namespace is its own) in cell ``c1`` when pooled."""
    return WorkspaceSpec(
        id=uuid.uuid4(),
        slug=slug,
        organization_id=uuid.uuid4(),
        tier=tier,
        region="eu-west-1",
        display_name="Acme Corp",
        cell="c1" if tier == "professional" else None,
    )


def server_config(**changes: object) -> KubeServerConfig:
    values: dict[str, object] = {
        "database_url": "postgresql://ws_abc:s3cret@db.internal:5432/ws_abc",
        "files_dir": "/unused",
        "public_url": "https://acme.canopy.test",
        "control_token": "control-token-1",
        "site_name": "Acme Corp",
        "team_name": "acme",
        "team_display_name": "Acme Corp",
        **changes,
    }
    return KubeServerConfig(**values)  # type: ignore[arg-type]


def deploy_settings(**changes: object) -> DeploySettings:
    values: dict[str, object] = {
        "env": "test",
        "domain": "canopy.test",
        "image": IMAGE,
        "database_cidrs": ("10.10.0.0/16",),
        "s3_cidrs": ("10.20.0.0/24", "10.20.1.0/24"),
        "rollout_timeout": 60.0,
        **changes,
    }
    return DeploySettings(**values)  # type: ignore[arg-type]
