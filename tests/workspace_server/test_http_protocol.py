"""The server's HTTP/1.1 protocol (:mod:`workspace_server.http_protocol`): a response's writes go to the socket
as one, and nothing is lost to it. Over a real server's sockets, and on a transport that records its writes."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from tests.workspace_server.raw_http import read_response
from workspace_server.http_protocol import _CoalescedWrites


class _RecordingTransport:
    """An asyncio transport's write side that records what it is given."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info {name}"


def test_writes_of_one_turn_of_the_loop_go_as_one() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes]]:
        raw = _RecordingTransport()
        coalesced = _CoalescedWrites(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        coalesced.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        coalesced.write(b"{}")
        during_the_turn = list(raw.writes)
        await asyncio.sleep(0)
        return during_the_turn, raw.writes

    during_the_turn, after = asyncio.run(scenario())
    assert during_the_turn == []
    assert after == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_closing_writes_what_is_pending_first_and_nothing_after() -> None:
    async def scenario() -> _RecordingTransport:
        raw = _RecordingTransport()
        coalesced = _CoalescedWrites(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        assert coalesced.get_extra_info("peername") == "info peername"
        coalesced.write(b"last words")
        coalesced.close()
        coalesced.write(b"too late")
        await asyncio.sleep(0)
        return raw

    raw = asyncio.run(scenario())
    assert raw.closed and raw.writes == [b"last words"]


def test_a_response_before_close_arrives_whole(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /api/v4/system/ping HTTP/1.1\r\nHost: canopy\r\nConnection: close\r\n\r\n")
        buffer = bytearray()
        status, headers, body = read_response(sock, buffer)
        assert sock.recv(65536) == b"" and not buffer  # then the server closes
    assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close"
    assert json.loads(body)["status"] == "OK"


def test_pipelined_requests_are_answered_in_order(server: Any) -> None:
    requests = b"".join(
        f"GET {path} HTTP/1.1\r\nHost: canopy\r\n\r\n".encode()
        for path in ("/api/v4/system/ping", "/api/v4/no/such/route", "/api/v4/system/ping")
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(requests)
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in range(3)]
    assert [status for status, _, _ in answers] == ["HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"]
    assert json.loads(answers[1][2])["status_code"] == 404
