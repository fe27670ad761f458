"""The localstripe harness listens on loopback only, keeps its store in its own directory and flushes."""

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


def test_its_store_is_pickled_in_its_own_directory_and_flushed(
    localstripe: LocalStripe, stripe_client: stripe.StripeClient
) -> None:
    store = localstripe.state_dir / "localstripe.pickle"
    stripe_client.v1.customers.create({"email": "a@example.com"})
    assert store.exists() and store.stat().st_size > 0
    assert len(stripe_client.v1.customers.list().data) == 1
    localstripe.flush()
    assert stripe_client.v1.customers.list().data == []
