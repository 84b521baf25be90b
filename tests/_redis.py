"""A throwaway Redis for the scaling tests: Debian's redis-server on a free port, no persistence.

`make test` installs redis-server (as it does Chromium). Without it these tests skip,
except under CI=true, where they fail.
"""

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from app.web.devserver import free_port, wait_until
from tests._requires import missing


def redis_server_path() -> str | None:
    return os.environ.get("BACKBEAT_REDIS_SERVER") or shutil.which("redis-server")


def require_redis_server() -> str:
    path = redis_server_path()
    if not path:
        message = "no redis-server: install Debian's `redis-server` (make test does)"
        missing(message)
    return path


class RedisServer:
    """`redis-server --port FREE --save '' --appendonly no`; stop() then start() is an outage."""

    def __init__(self, path: str, folder: Path) -> None:
        self.path, self.folder, self.port = path, folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisServer":
        argv = [self.path, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.folder)]
        log = open(self.folder / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        log.close()
        wait_until(self.answers, 10, f"redis-server on port {self.port}")
        return self

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited with {self.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(require_redis_server(), tmp_path).start()
    yield server
    server.stop()
