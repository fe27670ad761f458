"""A small synchronous Mattermost WebSocket client for tests (the ``websockets`` package's sync client), and
helpers that set up users through the REST API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

Message = dict[str, Any]


class SeqError(AssertionError):
    """The server broke the ``seq`` contract."""


class WsClient:
    """A connection that checks that event ``seq`` rises by exactly 1 from 0, and keeps what it received."""

    def __init__(self, base_url: str, token: str | None = None, *, header_token: str | None = None) -> None:
        url = base_url.replace("http://", "ws://") + "/api/v4/websocket"
        headers = {"Authorization": f"Bearer {header_token}"} if header_token else None
        self.ws: ClientConnection = connect(url, additional_headers=headers, open_timeout=10, legacy=True)
        self.next_seq = 0
        self.action_seq = 0
        self.events: list[Message] = []
        self.replies: dict[int, Message] = {}
        if token is not None:
            self.hello = self.authenticate(token)

    def send(self, action: str, data: dict[str, Any] | None = None) -> int:
        """Send an action; answers its ``seq``."""
        self.action_seq += 1
        self.ws.send(json.dumps({"action": action, "seq": self.action_seq, "data": data or {}}))
        return self.action_seq

    def authenticate(self, token: str) -> Message:
        """``authentication_challenge``; answers ``hello`` after checking the OK reply."""
        seq = self.send("authentication_challenge", {"token": token})
        hello = self.wait_event(lambda e: e["event"] == "hello")
        assert self.reply(seq)["status"] == "OK"
        return hello

    def _receive(self, timeout: float) -> Message:
        message: Message = json.loads(self.ws.recv(timeout=timeout))
        if "seq_reply" in message:
            self.replies[message["seq_reply"]] = message
        else:
            if message.get("seq") != self.next_seq:
                raise SeqError(f"expected seq {self.next_seq}, got {message.get('seq')}: {message}")
            self.next_seq += 1
            self.events.append(message)
        return message

    def wait_event(self, predicate: Callable[[Message], bool], timeout: float = 10.0) -> Message:
        """The first event (received from now on, or already kept and not yet consumed) matching ``predicate``."""
        for index, event in enumerate(self.events):
            if predicate(event):
                del self.events[index]
                return event
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching event in {timeout}s; kept: {self.events}")
            message = self._receive(remaining)
            if "seq_reply" not in message and predicate(message):
                self.events.remove(message)
                return message

    def reply(self, seq: int, timeout: float = 10.0) -> Message:
        """The reply to action ``seq``."""
        deadline = time.monotonic() + timeout
        while seq not in self.replies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply to {seq}")
            self._receive(remaining)
        return self.replies.pop(seq)

    def drain_events(self) -> list[Message]:
        """The events kept so far, consumed."""
        events, self.events = self.events, []
        return events

    def close(self) -> None:
        self.ws.close()


@dataclass
class User:
    """A user with a logged-in REST client."""

    id: str
    username: str
    token: str
    api: httpx.Client


def login(base_url: str, login_id: str, password: str) -> User:
    api = httpx.Client(base_url=f"{base_url}/api/v4", timeout=15)
    response = api.post("/users/login", json={"login_id": login_id, "password": password})
    assert response.status_code == 200, response.text
    token = response.headers["Token"]
    api.headers["Authorization"] = f"Bearer {token}"
    body = response.json()
    return User(body["id"], body["username"], token, api)


def create_user(admin: User, base_url: str, username: str, team_id: str, password: str = "password-123") -> User:
    """A new account, added to the team (and so to its default channels), logged in."""
    body = {"email": f"{username}@acme.test", "username": username, "password": password}
    response = admin.api.post("/users", json=body)
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    response = admin.api.post(f"/teams/{team_id}/members", json={"team_id": team_id, "user_id": user_id})
    assert response.status_code == 201, response.text
    return login(base_url, username, password)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()
