"""Several replicas of one workspace (same database, own runtime directories and ports) share realtime events
through Redis: a post written through one replica reaches WebSocket clients connected to another."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from argon2 import PasswordHasher

from tests.workspace_server.conftest import CONTROL_TOKEN, ServerProcess
from tests.workspace_server.wsclient import User, WsClient, create_user, login, ok

pytestmark = pytest.mark.slow

REDIS_URL = os.environ.get("CANOPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
PASSWORD = "replica password 1"


@pytest.fixture(scope="module")
def replicas(
    create_database: Any, spawn_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ServerProcess, ServerProcess]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:  # pragma: no cover - the machine runs Redis
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    database = create_database("ws_replicas")
    first = spawn_server(database, tmp_path_factory.mktemp("replica_a"), WS_REDIS_URL=REDIS_URL)
    first.wait_ready()
    second = spawn_server(database, tmp_path_factory.mktemp("replica_b"), WS_REDIS_URL=REDIS_URL)
    second.wait_ready()
    assert first.port != second.port
    return first, second


@pytest.fixture(scope="module")
def users(replicas: tuple[ServerProcess, ServerProcess]) -> dict[str, User]:
    a, b = replicas
    response = httpx.put(
        f"{a.base_url}/api/v4/canopy/initial_admin",
        headers={"Authorization": f"Bearer {CONTROL_TOKEN}"},
        json={"email": "admin@acme.test", "username": "admin", "password_hash": PasswordHasher().hash(PASSWORD)},
    )
    assert response.status_code == 200, response.text
    admin = login(a.base_url, "admin", PASSWORD)
    team_id = ok(admin.api.get(f"/teams/name/{a.team_name}"))["id"]
    return {
        "admin": admin,
        "writer": create_user(admin, a.base_url, "writer", team_id),
        # Created through replica A, logged in through replica B: one database.
        "reader": create_user(admin, b.base_url, "reader", team_id),
        "team_id": team_id,  # type: ignore[dict-item]
    }


@pytest.fixture
def sockets() -> Iterator[list[WsClient]]:
    opened: list[WsClient] = []
    yield opened
    for ws in opened:
        ws.close()


def posted_with(message: str) -> Any:
    return lambda e: e["event"] == "posted" and json.loads(e["data"]["post"])["message"] == message


def test_a_post_through_replica_a_reaches_a_client_of_replica_b(
    replicas: tuple[ServerProcess, ServerProcess], users: dict[str, Any], sockets: list[WsClient]
) -> None:
    a, b = replicas
    writer, reader = users["writer"], users["reader"]
    on_b = WsClient(b.base_url, reader.token)
    on_a = WsClient(a.base_url, reader.token)
    sockets += [on_b, on_a]
    town_square = ok(writer.api.get(f"/teams/{users['team_id']}/channels/name/town-square"))["id"]
    assert writer.api.base_url.port == a.port
    created = ok(writer.api.post("/posts", json={"channel_id": town_square, "message": "from A to @reader"}), 201)
    for ws in (on_b, on_a):
        event = ws.wait_event(posted_with("from A to @reader"))
        assert json.loads(event["data"]["post"])["id"] == created["id"]
        assert json.loads(event["data"]["mentions"]) == [reader.id]


def test_typing_on_one_replica_reaches_the_other(
    replicas: tuple[ServerProcess, ServerProcess], users: dict[str, Any], sockets: list[WsClient]
) -> None:
    a, b = replicas
    writer, reader = users["writer"], users["reader"]
    town_square = ok(writer.api.get(f"/teams/{users['team_id']}/channels/name/town-square"))["id"]
    writer_ws, reader_ws = WsClient(a.base_url, writer.token), WsClient(b.base_url, reader.token)
    sockets += [writer_ws, reader_ws]
    assert (
        writer_ws.reply(writer_ws.send("user_typing", {"channel_id": town_square, "parent_id": ""}))["status"] == "OK"
    )
    typing = reader_ws.wait_event(lambda e: e["event"] == "typing")
    assert typing["data"]["user_id"] == writer.id


def test_membership_changes_on_one_replica_update_the_other(
    replicas: tuple[ServerProcess, ServerProcess], users: dict[str, Any], sockets: list[WsClient]
) -> None:
    _, b = replicas
    writer, reader = users["writer"], users["reader"]
    body = {"team_id": users["team_id"], "name": "replicated", "display_name": "Replicated", "type": "P"}
    channel = ok(writer.api.post("/channels", json=body), 201)["id"]
    reader_ws = WsClient(b.base_url, reader.token)
    sockets.append(reader_ws)
    # Replica B learns the channel's members (the writer alone) through the writer's own socket there.
    writer_on_b = WsClient(b.base_url, writer.token)
    sockets.append(writer_on_b)
    ok(writer.api.post("/posts", json={"channel_id": channel, "message": "before reader"}), 201)
    writer_on_b.wait_event(posted_with("before reader"))
    ok(writer.api.post(f"/channels/{channel}/members", json={"user_id": reader.id}), 201)
    ok(writer.api.post("/posts", json={"channel_id": channel, "message": "after reader"}), 201)
    reader_ws.wait_event(posted_with("after reader"), timeout=5)
    assert not [e for e in reader_ws.drain_events() if "before reader" in json.dumps(e)]


def test_replicas_log_no_redis_trouble(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    for replica in replicas:
        assert "redis" not in replica.log().lower(), replica.log()


def test_workspaces_sharing_redis_do_not_mix() -> None:
    from workspace_server.events import Broadcast, _Routed

    routed = _Routed("posted", Broadcast(channel_id="c" * 26), '{"event":"posted","seq":')
    assert _Routed.from_wire(routed.wire("team-one"), "team-two") is None
    back = _Routed.from_wire(routed.wire("team-one"), "team-one")
    assert back == routed
