"""``billing`` never imports ``control_plane`` or ``workspace_server``; its engine does no I/O."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import billing

ROOT = Path(billing.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_billing_imports_no_other_canopy_package() -> None:
    for path in ROOT.rglob("*.py"):
        tops = {name.split(".")[0] for name in _imports(path)}
        assert not tops & {"control_plane", "workspace_server", "infra"}, path


def test_the_engine_uses_the_standard_library_and_itself_only() -> None:
    for path in (ROOT / "engine").rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert name.startswith("billing.engine") or top in sys.stdlib_module_names, (path, name)
            assert top not in {"socket", "http", "urllib", "os", "time", "subprocess"}, (path, name)
