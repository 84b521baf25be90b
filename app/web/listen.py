"""The listening socket: a small send buffer, and Nagle off, for every connection.

Linux autotunes a loopback or LAN connection's send buffer up to 4 MiB. Audience frames
are about 1 KiB, so a viewer that stops reading would hide half a minute of frames in
the kernel before its outbox in `app.live.channel` noticed. With 64 KiB the backlog
reaches the outbox within a second, and the stalled viewer is evicted (4008) a few
seconds later, as designed.

The socket is made with `IPPROTO_TCP` explicitly: asyncio turns Nagle's algorithm off
(TCP_NODELAY) only on connections whose socket says so, and one made with protocol 0
does not. With Nagle on, a frame written while the previous one is unacknowledged waits
for the viewer's delayed ACK: one frame in ~10 arrived 25 ms late (docs/benchmarks.md,
"Fan-out, session 6").
"""

import socket

SEND_BUFFER = 64 * 1024  # bytes the kernel may hold for one connection (about 0.5 s of frames)


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound (not yet listening: uvicorn does that) with SO_SNDBUF for its connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
