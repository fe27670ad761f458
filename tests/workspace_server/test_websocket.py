"""The Mattermost WebSocket API against the real server process: protocol, events, and who receives them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.workspace_server.wsclient import User, WsClient, create_user, login, ok


@pytest.fixture(scope="module")
def admin_user(server: Any, admin: Any) -> User:
    return login(server.base_url, admin.username, admin.password)


@pytest.fixture(scope="module")
def team_id(admin_user: User, server: Any) -> str:
    return str(ok(admin_user.api.get(f"/teams/name/{server.team_name}"))["id"])


@pytest.fixture(scope="module")
def alice(server: Any, admin_user: User, team_id: str) -> User:
    return create_user(admin_user, server.base_url, "alice", team_id)


@pytest.fixture
def sockets() -> Iterator[list[WsClient]]:
    opened: list[WsClient] = []
    yield opened
    for ws in opened:
        ws.close()


def test_hello_has_seq_0_and_ping_answers_pong(server: Any, alice: User, sockets: list[WsClient]) -> None:
    ws = WsClient(server.base_url, alice.token)
    sockets.append(ws)
    assert ws.hello["seq"] == 0
    assert ws.hello["data"]["connection_id"] and ws.hello["data"]["server_version"].startswith("9.")
    assert ws.hello["broadcast"]["user_id"] == alice.id
    seq = ws.send("ping")
    pong = ws.reply(seq)
    assert pong["status"] == "OK" and pong["data"]["text"] == "pong" and pong["data"]["server_time"] > 0
