"""Schemathesis over the control plane's OpenAPI: no 5xx, and every answer is one the document describes.

Every operation gets schema-valid and schema-invalid cases from a fixed seed, each sent with an admin
token and with an owner token. The cases are built per operation with Hypothesis directly: schemathesis'
own pytest plugin does not run on pytest 9.
"""

from __future__ import annotations

from collections.abc import Callable

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.control_plane.conftest import Owner, staff_token

SEED = 20261206
EXAMPLES = {GenerationMode.POSITIVE: 60, GenerationMode.NEGATIVE: 10}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(client: TestClient) -> BaseSchema:
    """The app's own OpenAPI document, called in-process."""
    return schemathesis.openapi.from_asgi("/openapi.json", client.app)


@pytest.fixture(scope="module")
def bearers(client: TestClient, sign_up: Callable[[str], Owner]) -> list[dict[str, str]]:
    """An admin token from ``canopy create-account`` and an owner's from signup and verification."""
    admin = {"Authorization": f"Bearer {staff_token('fuzz-admin@canopy.example', 'admin')}"}
    return [admin, sign_up("fuzzed-owner").headers]


def fuzz(operation: APIOperation, mode: GenerationMode, bearers: list[dict[str, str]]) -> None:
    """Send ``EXAMPLES[mode]`` cases of ``operation`` (seeded) and run the checks on every answer."""

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.seed(SEED)
    def send(case: schemathesis.Case) -> None:
        for bearer in bearers:
            case.call_and_validate(headers=bearer, checks=CHECKS)

    send()


@pytest.mark.timeout(1200)  # every operation of the API, 140 cases each: minutes on a loaded machine
def test_every_answer_is_documented_and_no_5xx(api_schema: BaseSchema, bearers: list[dict[str, str]]) -> None:
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in EXAMPLES:
            try:
                fuzz(operation, mode, bearers)
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing of this operation can be made invalid (no parameters, unconstrained strings)
            except (Exception, BaseExceptionGroup) as exc:  # every operation runs; failures are reported together
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)


def test_405_is_a_problem_allowing_every_method_of_the_path(client: TestClient) -> None:
    r = client.put("/api/v1/workspaces")
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
    assert set(r.headers["allow"].split(", ")) == {"GET", "POST"}


def test_openapi_documents_problems_and_limits(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = [op for path in spec["paths"].values() for op in path.values()]
    for operation in operations:
        errors = {status: r for status, r in operation["responses"].items() if status.startswith(("4", "5"))}
        assert {"400", "422"} <= set(errors), operation["operationId"]
        assert all(set(r["content"]) == {"application/problem+json"} for r in errors.values()), operation["operationId"]
    create = spec["paths"]["/api/v1/workspaces"]["post"]
    assert {"401", "403", "409", "503"} <= set(create["responses"])
    [key] = [p for p in create["parameters"] if p["name"] == "Idempotency-Key"]
    assert {"minLength": 1, "maxLength": 200}.items() <= key["schema"]["anyOf"][0].items()
    [before_id] = [p for p in spec["paths"]["/api/v1/audit"]["get"]["parameters"] if p["name"] == "before_id"]
    assert before_id["schema"]["anyOf"][0]["maximum"] == 2**63 - 1
