"""Shared fixtures: the app on a fresh data folder, in-process (TestClient) or as a real server."""

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.web.devserver import ServerProcess, backbeat_command, wait_until
from app.web.server import create_app
from app.web.settings import Settings

REPO = Path(__file__).resolve().parents[1]

# httpx gives up after 5 s; on a loaded 2-core CI machine a server's first run (which starts
# its training process) can take longer to answer. Tests wait on conditions, with deadlines of
# their own, so the one-off calls below get 30 s (a call that passes `timeout=` keeps its own).
HTTP_TIMEOUT = 30.0
for _verb in ("get", "post", "put", "patch", "delete", "request", "stream"):
    setattr(httpx, _verb, functools.partial(getattr(httpx, _verb), timeout=HTTP_TIMEOUT))


class Api:
    """A TestClient with the few calls every server test makes."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def create(self, **config) -> str:
        """A run on the x1, x2 inputs that plays on after its chime unless told otherwise
        (tests count layers and time their runs; the first-run defaults are tested apart)."""
        pinned = {"stop_at_convergence": False, "features": ["x1", "x2"]}
        r = self.client.post("/api/runs", json={**pinned, **config})
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


@pytest.fixture
def spawn(tmp_path) -> Iterator[Callable[..., ServerProcess]]:
    """Start server processes (argv gets `{port}` filled in); any left running are killed."""
    started: list[ServerProcess] = []

    def spawn(argv: list[str], env: dict | None = None, port: int | None = None):
        server = ServerProcess(argv, tmp_path, port=port, env=env, cwd=REPO).start()
        started.append(server)
        return server

    yield spawn
    for server in started:
        if server.proc.poll() is None:
            server.kill()


@pytest.fixture
def backbeat() -> list[str]:
    """The installed `backbeat` script beside this interpreter, else the module."""
    return backbeat_command()
