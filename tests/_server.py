"""A real uvicorn in a thread of the test process: real sockets, with the app's state in reach."""

import asyncio
import base64
import os
import socket
import threading

import uvicorn

from app.web.devserver import free_port, wait_until
from app.web.listen import listening_socket


class ThreadedServer:
    """`with ThreadedServer(app) as srv:` serves `app` on a free port until the block ends."""

    def __init__(self, app, **config) -> None:
        self.app, self.port = app, free_port()
        self.url, self.ws_url = f"http://127.0.0.1:{self.port}", f"ws://127.0.0.1:{self.port}"
        options = dict(log_level="warning", access_log=False, ws_max_size=4096) | config
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, **options)
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, name="test-uvicorn", daemon=True)

    def _run(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[listening_socket("127.0.0.1", self.port)])

        asyncio.run(serve())

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), 20, "the test server")
        if not self.server.started:
            raise AssertionError("the test server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def call(self, fn, timeout: float = 5.0):
        """Run `fn()` on the server's event loop and return its result."""

        async def run():
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def task_count(self) -> int:
        return self.call(lambda: len(asyncio.all_tasks()))


def raw_handshake(port: int, path: str, rcvbuf: int | None = None) -> socket.socket:
    """A websocket client as bare as it gets: sends the upgrade request and reads nothing."""
    s = socket.socket()
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    s.sendall(request.encode())
    return s
