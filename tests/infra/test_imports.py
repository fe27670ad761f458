"""``infra`` stands alone: the control plane imports it, never the other way round."""

from __future__ import annotations

import ast
from pathlib import Path

import infra

ROOT = Path(infra.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_infra_imports_no_other_canopy_package() -> None:
    for path in ROOT.rglob("*.py"):
        assert not _imports(path) & {"control_plane", "workspace_server", "billing"}, path


def test_conventions_and_policy_are_pure_python() -> None:
    for name in ("conventions.py", "policy.py"):
        assert not _imports(ROOT / name) & {"pulumi", "pulumi_aws", "boto3", "botocore"}, name
