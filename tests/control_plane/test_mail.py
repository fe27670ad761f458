"""Mail goes through the outbox and out over real SMTP when configured."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from control_plane.core.db import session_scope
from control_plane.core.settings import get_settings
from control_plane.mail import service as mail


class Inbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server(cp_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("CANOPY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CANOPY_SMTP_PORT", str(port))
    monkeypatch.setenv("CANOPY_SMTP_STARTTLS", "false")
    get_settings.cache_clear()
    yield inbox
    controller.stop()
    monkeypatch.undo()
    get_settings.cache_clear()


def test_outbox_is_delivered_once_over_smtp(smtp_server: Inbox) -> None:
    with session_scope() as session:
        mail.queue(session, "reader@example.com", "Hello", "Body text")
    with session_scope() as session:
        assert mail.deliver_pending(session) >= 1
    with session_scope() as session:
        assert mail.deliver_pending(session) == 0
        [row] = mail.recent(session, limit=1, to="reader@example.com")
        assert row.sent_at is not None
    delivered = [m for m in smtp_server.messages if m["To"] == "reader@example.com"]
    assert len(delivered) == 1
    assert delivered[0]["Subject"] == "Hello"
    assert "Body text" in delivered[0].get_payload()


def test_failed_delivery_keeps_the_message(cp_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    monkeypatch.setenv("CANOPY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CANOPY_SMTP_PORT", str(closed_port))
    get_settings.cache_clear()
    try:
        with session_scope() as session:
            mail.queue(session, "later@example.com", "Later", "Kept")
        with session_scope() as session:
            assert mail.deliver_pending(session) == 0
            [row] = mail.recent(session, limit=1, to="later@example.com")
            assert row.sent_at is None
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
