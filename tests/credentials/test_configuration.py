"""Outside dev mode Canopy refuses to start with the public default ``CANOPY_SECRET_KEY`` or without usable
credential keys, naming the variable; the embedded default keeps a random secret key in its state dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from control_plane.core.security import SECRET_KEY_FILE, state_dir_secret_key
from control_plane.core.settings import DEFAULT_SECRET_KEY
from tests.reconciler.conftest import ROOT

NO_DATABASE = "postgresql://postgres@127.0.0.1:5432/canopy_refused_before_connecting"
GOOD_KEYS = json.dumps([Fernet.generate_key().decode()])
COMMANDS = (["api", "--port", "0"], ["worker"], ["run", "--port", "0"])


def canopy(args: list[str], state_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``canopy <args>`` with only ``env`` of Canopy's configuration."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CANOPY_")}
    configured = base | {"CANOPY_DATABASE_URL": NO_DATABASE, "CANOPY_STATE_DIR": str(state_dir)} | env
    argv = [sys.executable, "-m", "control_plane.cli", *args]
    return subprocess.run(argv, env=configured, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_the_public_default_secret_key_is_refused(args: list[str], tmp_path: Path) -> None:
    result = canopy(args, tmp_path, CANOPY_SECRET_KEY=DEFAULT_SECRET_KEY, CANOPY_CREDENTIAL_KEYS=GOOD_KEYS)
    assert result.returncode == 2, result.stderr
    assert f"canopy {args[0]}: CANOPY_SECRET_KEY is the public default" in result.stderr


@pytest.mark.parametrize(
    ("keys", "named"),
    [(None, "CANOPY_CREDENTIAL_KEYS is not set"), ('["not-a-key"]', "CANOPY_CREDENTIAL_KEYS[0] is not a Fernet key")],
)
def test_missing_or_unusable_credential_keys_are_refused(keys: str | None, named: str, tmp_path: Path) -> None:
    env = {"CANOPY_SECRET_KEY": Fernet.generate_key().decode()} | ({"CANOPY_CREDENTIAL_KEYS": keys} if keys else {})
    for args in COMMANDS[:2]:
        result = canopy(args, tmp_path, **env)
        assert result.returncode == 2 and named in result.stderr, result.stderr
        assert keys is None or keys not in result.stderr


def test_unset_secret_key_is_refused_but_canopy_run_keeps_a_random_one(tmp_path: Path) -> None:
    api = canopy(["api", "--port", "0"], tmp_path, CANOPY_CREDENTIAL_KEYS=GOOD_KEYS)
    assert api.returncode == 2 and "CANOPY_SECRET_KEY is the public default" in api.stderr
    run = canopy(["run", "--port", "0"], tmp_path)  # not dev mode: its own key passes, the credential keys do not
    assert run.returncode == 2 and "canopy run: CANOPY_CREDENTIAL_KEYS is not set" in run.stderr, run.stderr
    key_file = tmp_path / SECRET_KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert state_dir_secret_key(tmp_path) == key_file.read_text() != DEFAULT_SECRET_KEY
    assert len(key_file.read_text()) >= 43 and state_dir_secret_key(tmp_path / "other") != key_file.read_text()
    assert {p.name for p in tmp_path.iterdir()} == {SECRET_KEY_FILE, "other"}, "no draft key file is left behind"
