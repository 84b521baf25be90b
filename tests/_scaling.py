"""What the scaling tests share: web and worker processes on one real Redis, and viewers."""

import contextlib
import json
import threading

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect

from tests._redis import redis_server  # noqa: F401 - the fixture

RUN = {"dataset": "xor", "features": ["x1", "x2"], "stop_at_convergence": False}


@pytest.fixture
def web(spawn, backbeat, tmp_path, redis_server):  # noqa: F811
    """`web(*extra)`: a web process on the shared data folder and broker, once healthy."""

    def start(*extra: str):
        argv = [*backbeat, "--port", "{port}", "--no-browser", "--data", str(tmp_path / "data")]
        return spawn([*argv, "--broker", redis_server.url, *extra]).wait_healthy()

    return start


@pytest.fixture
def worker(spawn, backbeat, redis_server):  # noqa: F811
    """`worker(*extra, env=None)`: a `backbeat worker` process on the shared broker."""

    def start(*extra: str, env: dict | None = None):
        return spawn([*backbeat, "worker", "--broker", redis_server.url, *extra], env=env)

    return start


def covers_from_the_start(history: list[int], next_step: int) -> bool:
    """A thinned history from the run's start, each step once, then the live frames."""
    gaps = np.diff(history)
    return (
        history[0] <= gaps[0]  # step 1, or the first kept when thinned
        and bool((gaps > 0).all())
        and history[-1] < next_step <= history[-1] + gaps.max()
    )


def create(server, **config) -> str:
    r = httpx.post(f"{server.url}/api/runs", json={**RUN, **config}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def run_of(server, run_id: str) -> dict:
    r = httpx.get(f"{server.url}/api/runs/{run_id}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def control(server, run_id: str, action: str, **extra) -> httpx.Response:
    body = {"action": action, **extra}
    return httpx.post(f"{server.url}/api/runs/{run_id}/control", json=body, timeout=20)


class Viewer:
    """A websocket on one process: its hello, then every message, read in a thread."""

    def __init__(self, server, run_id: str, detail: str = "full") -> None:
        url = f"{server.ws_url}/ws/runs/{run_id}?detail={detail}"
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(url, open_timeout=10, max_size=None))
        self.hello = json.loads(self.ws.recv(timeout=10))
        self.messages: list[dict] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for text in self.ws:
                message = json.loads(text)
                if message["type"] == "ping":
                    self.ws.send(json.dumps({"type": "pong"}))
                self.messages.append(message)
        except Exception:
            pass
        finally:
            self.closed.set()

    def of(self, kind: str) -> list[dict]:
        return [m for m in list(self.messages) if m["type"] == kind]

    def steps(self) -> list[int]:
        """Every step seen live: the hello's history, then each frame's."""
        steps = list(self.hello["history"]["step"])
        for frame in self.of("frame"):
            steps.extend(frame["beats"]["step"])
        return steps

    def losses(self) -> list[float]:
        losses = list(self.hello["history"]["loss"])
        for frame in self.of("frame"):
            losses.extend(frame["beats"]["loss"])
        return losses

    def ended(self) -> dict | None:
        ends = self.of("end")
        return ends[0] if ends else None

    def close(self) -> None:
        self.stack.close()
        self.thread.join(5)


def live_on(server, run_id: str) -> Viewer:
    """A viewer whose hello comes from a live run (a stored run's hello has epoch null)."""
    viewer = Viewer(server, run_id)
    assert viewer.hello["run"]["state"] == "running"
    assert viewer.hello["run"]["epoch"] is not None, "served from the store, not live"
    return viewer
