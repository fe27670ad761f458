"""uvicorn's HTTP/1.1 protocol with each response written to the socket at once.

uvicorn writes a response's head and its body with a ``transport.write`` each: two system calls, and on a
keep-alive connection two wake-ups of the reader, the first for a head it cannot use yet. Here the writes made in
one turn of the event loop go out together, once the turn ends: one write per response whose body is in memory
(Starlette's responses and :class:`posts.CreatePostFastPath` send head and body in one step); a streamed body (a
file download) goes out as before, a write per chunk, flow control included.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _CoalescedWrites:
    """A transport whose writes wait for the end of the event loop's turn and go out as one; everything else is
    the socket transport's own. Closing writes what is pending first."""

    __slots__ = ("_chunks", "_loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._chunks:
            self._loop.call_soon(self.flush)
        self._chunks.append(data)

    def flush(self) -> None:
        """Write what is pending, unless the connection is closing (its data would go nowhere)."""
        if not self._chunks:
            return
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        if not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        # Asked after every response: answered here rather than through __getattr__'s slower fallback.
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (``uvicorn.Config(http=HttpProtocol)``) with coalesced writes (see the
    module docstring). A WebSocket upgrade hands the socket's own transport on: the WebSocket protocol, and the
    event fan-out behind it, write whole frames themselves."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Serve ``transport`` through coalesced writes."""
        super().connection_made(_CoalescedWrites(transport, self.loop))  # type: ignore[arg-type]

    def handle_websocket_upgrade(self) -> None:
        """Flush, then let uvicorn upgrade the connection on the socket's own transport."""
        coalesced: _CoalescedWrites = self.transport  # type: ignore[assignment]
        coalesced.flush()
        self.transport = coalesced.transport
        super().handle_websocket_upgrade()
