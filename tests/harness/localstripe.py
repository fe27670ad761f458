"""localstripe (a Stripe API emulator) in a process of its own: the ``stripe`` SDK talks to it over HTTP.

Use the fixtures (import them into a conftest.py)::

    from tests.harness.localstripe import localstripe, stripe_client  # noqa: F401

``localstripe`` (session) starts :mod:`tests.harness.localstripe_main` once on a free loopback port with its
store in a temporary directory of its own. ``stripe_client`` (function) flushes every object first (localstripe
ignores idempotency keys and keeps everything otherwise) and gives a ``StripeClient`` pointed at it. Only one
localstripe may run per test process. What localstripe lacks is listed in shared/design.md section 6 and
docs/billing.md.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import stripe

from tests.harness.moto import _free_port

API_KEY = "sk_test_canopy"
PUBLISHABLE_KEY = "pk_test_canopy"


@dataclass
class LocalStripe:
    """A running localstripe subprocess."""

    endpoint: str
    process: subprocess.Popen[bytes]
    state_dir: Path

    def client(self) -> stripe.StripeClient:
        """A ``StripeClient`` for this server (no network retries: a failure shows at once)."""
        return stripe.StripeClient(API_KEY, base_addresses={"api": self.endpoint}, max_network_retries=0)

    def _config(self, method: str, path: str, form: dict[str, str] | None = None) -> None:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(f"{self.endpoint}/_config/{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=30):
            pass

    def flush(self) -> None:
        """Forget every object (customers, invoices, ...)."""
        self._config("DELETE", "data")

    def register_webhook(self, webhook_id: str, url: str, secret: str) -> None:
        """Deliver every event, signed with ``secret``, to ``url`` (about 1 s after it happens)."""
        self._config("POST", f"webhooks/{webhook_id}", {"url": url, "secret": secret})

    def forget_webhook(self, webhook_id: str) -> None:
        """Stop delivering events to the endpoint registered as ``webhook_id``."""
        self._config("DELETE", f"webhooks/{webhook_id}")

    def stop(self) -> None:
        """Stop the server."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _answers(endpoint: str) -> bool:
    request = urllib.request.Request(f"{endpoint}/v1/customers?limit=1", headers={"Authorization": f"Bearer {API_KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_localstripe(state_dir: Path, timeout: float = 30.0) -> LocalStripe:
    """Start localstripe on 127.0.0.1 (its log in ``state_dir``) and wait until it answers."""
    port = _free_port()
    log = (state_dir / "localstripe.log").open("wb")
    script = Path(__file__).with_name("localstripe_main.py")
    process = subprocess.Popen(
        [sys.executable, "-P", str(script), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    server = LocalStripe(f"http://127.0.0.1:{port}", process, state_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"localstripe exited with status {process.returncode}: see {state_dir}/localstripe.log")
        if _answers(server.endpoint):
            return server
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"localstripe did not answer within {timeout:g}s")


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    """The session's localstripe, its store in a temporary directory removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="canopy-localstripe-") as state_dir:
        server = start_localstripe(Path(state_dir))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def stripe_client(localstripe: LocalStripe) -> stripe.StripeClient:
    """A ``StripeClient`` on an emptied localstripe."""
    localstripe.flush()
    return localstripe.client()
