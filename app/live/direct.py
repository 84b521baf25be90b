"""A viewer's socket written directly: a tick's frames framed once, the same bytes to all.

Through ASGI every message to every viewer costs a queue hand-off, a task wake-up and
the send path (starlette → uvicorn → websockets → transport), about 10-20 µs each: at
1,000 viewers and ~100 messages a second each, more than a core. A server's websocket
frames are unmasked, so one tick's messages, framed once (`wire.ws_text_frame`), are the
same bytes for every viewer; this writes them to each viewer's transport in one call.

It knows uvicorn's websockets-sansio protocol (uvicorn's default with `websockets`
installed) by duck typing, and is used only when the connection is one: any other server
(the test client, wsproto, hypercorn) keeps the ASGI path, which behaves the same.
"""

import asyncio
import contextlib
from collections.abc import Callable

EVICTED_GRACE = 10.0  # s an evicted viewer has to read its close frame before it is cut off
# attributes of uvicorn's WebSocketsSansIOProtocol this relies on (uvicorn 0.3x-0.5x)
_PROTOCOL_ATTRIBUTES = ("transport", "conn", "close_sent", "disconnected", "queue", "loop")


class DirectSocket:
    """Writes pre-framed bytes to one uvicorn websocket connection, beside uvicorn's own."""

    def __init__(self, protocol) -> None:
        self.protocol = protocol
        self.transport: asyncio.WriteTransport = protocol.transport
        # bytes written but not yet taken by the kernel: what the viewer is behind by
        self.backlog: Callable[[], int] = self.transport.get_write_buffer_size

    @classmethod
    def of(cls, protocol) -> "DirectSocket | None":
        """The direct writer for an ASGI connection's protocol object, if it is one we know."""
        if type(protocol).__name__ != "WebSocketsSansIOProtocol":
            return None
        if not all(hasattr(protocol, a) for a in _PROTOCOL_ATTRIBUTES):
            return None
        if not hasattr(protocol.transport, "get_write_buffer_size"):
            return None
        return cls(protocol)

    @property
    def closed(self) -> bool:  # (`disconnected` implies a closing transport; kept for clarity)
        p = self.protocol
        return p.close_sent or p.disconnected or self.transport.is_closing()

    def write(self, data: bytes) -> None:
        """Runs once per viewer per tick: as little Python as `closed` allows."""
        if not (self.protocol.close_sent or self.transport.is_closing()):
            self.transport.write(data)

    def close(self, code: int, reason: str) -> None:
        """Queue a close frame behind what is buffered, now, without waiting for the buffer.

        As uvicorn's own `websocket.close` does, except that it does not wait for the
        transport to drain first (a stalled viewer never drains): a slow viewer that
        catches up reads everything and then the code; one that reads nothing is cut off
        after EVICTED_GRACE. The session's receive sees the disconnect and ends.
        """
        p = self.protocol
        if self.closed:
            return
        with contextlib.suppress(Exception):  # the peer went first: nothing left to tell
            p.conn.send_close(code, reason)
            self.transport.write(b"".join(p.conn.data_to_send()))
        p.close_sent = True
        p.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        if getattr(p, "read_paused", False):  # read on, so the peer's close reply is seen
            p.read_paused = False
            self.transport.resume_reading()
        if getattr(p, "close_timer", None) is not None:
            p.close_timer.cancel()
        # uvicorn closes the transport when the peer answers the close; otherwise, cut it off
        p.close_timer = p.loop.call_later(EVICTED_GRACE, self.transport.abort)
