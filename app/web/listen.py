"""The listening socket, with a small send buffer that every connection inherits.

Linux autotunes a loopback or LAN connection's send buffer up to 4 MiB. Audience frames
are about 1 KiB, so a viewer that stops reading would hide half a minute of frames in
the kernel before its outbox in `app.live.channel` noticed. With 64 KiB the backlog
reaches the outbox within a second, and the stalled viewer is evicted (4008) a few
seconds later, as designed.
"""

import socket

SEND_BUFFER = 64 * 1024  # bytes the kernel may hold for one connection (about 0.5 s of frames)


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound (not yet listening: uvicorn does that) with SO_SNDBUF for its connections."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
