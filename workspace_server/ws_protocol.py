"""uvicorn's WebSocket protocol (websockets, sans-I/O) closing its connections with 1001 (going away) when the server
shuts down, where uvicorn's own says 1012 (service restart): a drained server is going away, and the client is to
reconnect to whichever server now serves the workspace."""

from __future__ import annotations

from typing import Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

GOING_AWAY: Final = 1001


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """``uvicorn.Config(ws=WebSocketProtocol)``: uvicorn's, but for the close code at shutdown."""

    def shutdown(self) -> None:
        """Close an open connection with 1001 (the rest, handshakes and closings, as uvicorn does)."""
        if self.close_sent or not self.handshake_complete or self.initial_response is not None:
            super().shutdown()
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": GOING_AWAY})
        self.conn.send_close(GOING_AWAY)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()
