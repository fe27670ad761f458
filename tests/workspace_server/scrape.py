"""Reading a workspace server's ``/metrics`` in tests."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.workspace_server.conftest import CONTROL_TOKEN

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: httpx.Client | None, base_url: str) -> Samples:
    """``GET /metrics`` with the control token (through ``client`` if given, else on a connection of its own)."""
    headers = {"Authorization": f"Bearer {CONTROL_TOKEN}"}
    if client is None:
        response = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10)
    else:
        response = client.get(f"{base_url}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def requests_by_class(samples: Samples) -> dict[str, float]:
    """``canopy_ws_http_requests_total`` by status class."""
    return {
        dict(labels)["status_class"]: value
        for (name, labels), value in samples.items()
        if name == "canopy_ws_http_requests_total"
    }


def in_flight(base_url: str) -> float:
    """The requests the server is serving now."""
    return scrape(None, base_url)[("canopy_ws_http_requests_in_flight", ())]
