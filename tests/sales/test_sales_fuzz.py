"""Schemathesis over the sales operations only (the whole API's fuzz is ``tests/control_plane``): no 5xx, and
every answer is one the OpenAPI document describes, with an admin's and a self-serve owner's tokens."""

from __future__ import annotations

import hypothesis
import pytest
from schemathesis.schemas import BaseSchema

from tests.control_plane.test_openapi_fuzz import EXAMPLES, api_schema, bearers, fuzz

__all__ = ["api_schema", "bearers"]


@pytest.mark.timeout(600)
def test_sales_answers_are_documented_and_never_5xx(api_schema: BaseSchema, bearers: list[dict[str, str]]) -> None:
    failures: list[str] = []
    fuzzed = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/api/v1/sales"):
            continue
        fuzzed.append(operation.label)
        for mode in EXAMPLES:
            try:
                fuzz(operation, mode, bearers)
            except hypothesis.errors.Unsatisfiable:
                pass
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert len(fuzzed) == 3, fuzzed
    assert not failures, "\n\n".join(failures)
