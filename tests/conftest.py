"""Shared fixtures: the app on a fresh data folder, in-process (TestClient) or as a real server."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.server import create_app
from app.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def wait_until(predicate: Callable, timeout: float = 10.0, what: str = "the condition"):
    """Poll until `predicate()` is truthy and return it; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
    return value


class Api:
    """A TestClient with the few calls every server test makes."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def create(self, **config) -> str:
        r = self.client.post("/api/runs", json=config)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def run(self, run_id: str) -> dict:
        r = self.client.get(f"/api/runs/{run_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def control(self, run_id: str, action: str, **extra) -> httpx.Response:
        return self.client.post(f"/api/runs/{run_id}/control", json={"action": action, **extra})

    def metrics(self, run_id: str, **params) -> dict:
        r = self.client.get(f"/api/runs/{run_id}/metrics", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_state(self, run_id: str, *states: str, timeout: float = 10.0) -> dict:
        return wait_until(
            lambda: (run := self.run(run_id))["state"] in states and run,
            timeout,
            f"run {run_id} to be {' or '.join(states)}",
        )


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable:
    return wait_until


@pytest.fixture
def serve(tmp_path) -> Callable[..., contextlib.AbstractContextManager[Api]]:
    """`with serve(**settings) as api:` runs the app, lifespan and all, on a data folder."""

    @contextlib.contextmanager
    def serve(data_dir: Path = tmp_path / "data", **settings) -> Iterator[Api]:
        with TestClient(create_app(Settings(data_dir=data_dir, **settings))) as client:
            yield Api(client)

    return serve


@pytest.fixture
def api(serve) -> Iterator[Api]:
    with serve() as api:
        yield api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on a free port, with its output in files (no pipe can fill up)."""

    def __init__(self, argv: list[str], port: int, log_dir: Path, env: dict | None) -> None:
        self.port, self.url = port, f"http://127.0.0.1:{port}"
        self.stdout, self.stderr = log_dir / f"out-{port}.txt", log_dir / f"err-{port}.txt"
        with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                argv, cwd=REPO, stdout=out, stderr=err, env={**os.environ, **(env or {})}
            )

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}: {self.output()}")
        try:
            return httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def wait_healthy(self, timeout: float = 20.0) -> "Server":
        wait_until(self.healthy, timeout, f"{self.url}/api/health")
        return self

    def output(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()


@pytest.fixture
def spawn(tmp_path) -> Iterator[Callable[..., Server]]:
    """Start server processes (argv gets `{port}` filled in); any left running are killed."""
    started: list[Server] = []

    def spawn(argv: list[str], env: dict | None = None, port: int | None = None) -> Server:
        port = port or free_port()
        server = Server([a.format(port=port) for a in argv], port, tmp_path, env)
        started.append(server)
        return server

    yield spawn
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


@pytest.fixture
def backbeat() -> list[str]:
    """The installed `backbeat` script beside this interpreter, else the module."""
    script = shutil.which("backbeat", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "app.cli"]
