"""The localstripe harness listens on loopback only, keeps its store in memory and flushes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import stripe

from tests.harness.localstripe import LocalStripe


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net) of the sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                found.add(address)
    return found


def test_it_listens_on_loopback_only(localstripe: LocalStripe) -> None:
    port = urlsplit(localstripe.endpoint).port
    assert port is not None
    assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing on :: or 0.0.0.0


def test_its_store_stays_in_memory_and_is_flushed(localstripe: LocalStripe, stripe_client: stripe.StripeClient) -> None:
    fixed_path = Path("/tmp/localstripe.pickle")  # where localstripe itself would pickle its store on every write
    before = fixed_path.stat().st_mtime_ns if fixed_path.exists() else None
    stripe_client.v1.customers.create({"email": "a@example.com"})
    assert not list(localstripe.state_dir.glob("*.pickle"))
    assert (fixed_path.stat().st_mtime_ns if fixed_path.exists() else None) == before
    assert len(stripe_client.v1.customers.list().data) == 1
    localstripe.flush()
    assert stripe_client.v1.customers.list().data == []
