"""``/api/v1/cells`` and ``canopy cells``: registration from stack outputs, errors naming fields,
operator-only access, idempotency, audit, drain."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from control_plane.cli import main as cli_main
from tests.cells.conftest import stack_outputs

PROBLEM = "application/problem+json"
Staff = Callable[[str], dict[str, str]]


def test_register_list_get_and_drain(client: TestClient, staff: Staff) -> None:
    operator = staff("operator")
    outputs = stack_outputs("alpha", max_workspaces=300, max_databases=250)
    r = client.post("/api/v1/cells", json=outputs, headers=operator)
    assert r.status_code == 201, r.text
    cell = r.json()
    assert {k: cell[k] for k in outputs} == outputs
    assert cell["state"] == "active" and cell["usage"] == {"workspaces": 0, "room": 250}

    listed = client.get("/api/v1/cells", headers=operator).json()
    assert [c["name"] for c in listed if c["name"] == "alpha"] == ["alpha"]
    assert client.get("/api/v1/cells/alpha", headers=operator).json() == cell

    drained = client.patch("/api/v1/cells/alpha", json={"state": "draining"}, headers=operator)
    assert drained.status_code == 200 and drained.json()["state"] == "draining"
    client.patch("/api/v1/cells/alpha", json={"state": "draining"}, headers=operator)  # no change, no entry
    audit = client.get("/api/v1/audit", params={"target_id": "alpha"}, headers=operator).json()["items"]
    assert [e["action"] for e in audit] == ["cell.draining", "cell.register"]
    assert audit[0]["before"]["state"] == "active" and audit[0]["after"]["state"] == "draining"

    bad_state = client.patch("/api/v1/cells/alpha", json={"state": "gone"}, headers=operator)
    assert bad_state.status_code == 422 and bad_state.json()["errors"][0]["field"] == "state"
    missing = client.get("/api/v1/cells/nope", headers=operator)
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"region": None, "zone_id": None}, {"region", "zone_id"}),
        ({"region": "mars-1", "kms_key_arn": "arn:aws:kms:key"}, {"region", "kms_key_arn"}),
        ({"private_subnet_ids": ["subnet-0123456789abcdef0"], "zone_id": "abc"}, {"private_subnet_ids", "zone_id"}),
        ({"max_workspaces": 0, "cluster_endpoint": "http://plain"}, {"max_workspaces", "cluster_endpoint"}),
        ({"surprise": "!"}, {"surprise"}),
        ({"postgres_port": "not-a-port"}, {"postgres_port"}),
        ({"oidc_provider_arn": None}, {"oidc_provider_arn"}),
        ({"oidc_provider_arn": "arn:aws:iam::210987654321:role/oidc"}, {"oidc_provider_arn"}),
    ],
)
def test_invalid_outputs_are_problems_naming_the_fields(
    client: TestClient, staff: Staff, change: dict[str, object], fields: set[str]
) -> None:
    outputs = stack_outputs("bad") | change
    body = {k: v for k, v in outputs.items() if v is not None}
    r = client.post("/api/v1/cells", json=body, headers=staff("admin"))
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["type"].endswith("/invalid-input")
    assert {e["field"] for e in problem["errors"]} == fields, problem
    assert client.get("/api/v1/cells/bad", headers=staff("admin")).status_code == 404


def test_a_name_is_registered_once_and_keys_replay(client: TestClient, staff: Staff) -> None:
    admin = staff("admin")
    headers = admin | {"Idempotency-Key": "register-beta"}
    first = client.post("/api/v1/cells", json=stack_outputs("beta"), headers=headers)
    replay = client.post("/api/v1/cells", json=stack_outputs("beta"), headers=headers)
    assert first.status_code == replay.status_code == 201 and first.json() == replay.json()
    reused = client.post("/api/v1/cells", json=stack_outputs("beta", max_workspaces=1), headers=headers)
    assert reused.status_code == 422 and reused.json()["type"].endswith("/idempotency-key-reused")
    again = client.post("/api/v1/cells", json=stack_outputs("beta"), headers=admin)
    assert again.status_code == 409 and again.json()["type"].endswith("/cell-exists")
    assert [c["name"] for c in client.get("/api/v1/cells", headers=admin).json()].count("beta") == 1


def test_only_operators_and_admins_manage_cells(client: TestClient, staff: Staff) -> None:
    for role in ("support", "sales"):
        headers = staff(role)
        assert client.post("/api/v1/cells", json=stack_outputs("gamma"), headers=headers).status_code == 403
        assert client.get("/api/v1/cells", headers=headers).status_code == 403
        assert client.patch("/api/v1/cells/alpha", json={"state": "active"}, headers=headers).status_code == 403
    assert client.get("/api/v1/cells").status_code == 401


def test_cli_registers_from_stack_output_json_and_lists(
    cp_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    stack = tmp_path / "stack.json"
    stack.write_text(json.dumps(stack_outputs("delta", region="us-east-2", max_workspaces=40)))
    assert cli_main(["cells", "register", "--from-json", str(stack)]) == 0
    assert cli_main(["cells", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "REGION", "STATE", "WORKSPACES", "ROOM"]
    assert ["delta", "us-east-2", "active", "0", "40"] in [line.split() for line in lines]

    stack.write_text(json.dumps(stack_outputs("epsilon") | {"bucket_name": "Not_A_Bucket"}))
    assert cli_main(["cells", "register", "--from-json", str(stack)]) == 1
    assert "bucket_name: " in caplog.text and "Not_A_Bucket" in caplog.text
