"""A user's script streams a run into one process; viewers and presenters on another hear it."""

# ruff: noqa: F811 - the fixtures come from tests/_redis.py and tests/_scaling.py

import json

import httpx
import pytest
from websockets.sync.client import connect

from tests._redis import redis_server  # noqa: F401 - the fixture
from tests._scaling import control, live_on, run_of, web  # noqa: F401 - web: a fixture

SPEC = {"name": "my script", "layers": ["fc1", "fc2"], "sizes": [4, 8, 2]}


def outside_run(server) -> str:
    r = httpx.post(f"{server.url}/api/runs/external", json=SPEC, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def batch(first: int, n: int = 10) -> dict:
    steps = list(range(first, first + n))
    return {
        "step": steps,
        "loss": [1.0 / s for s in steps],
        "grad_norm": [[0.1, 0.2] for _ in steps],
    }


def post(server, run_id: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/api/runs/{run_id}/steps", json=body, timeout=10)


def test_a_scripts_run_is_heard_and_controlled_through_another_process(web, wait_until):
    a, b = web(), web()
    run_id = outside_run(a)  # the script streams to a
    first = post(a, run_id, batch(1))
    assert first.status_code == 200 and first.json()["accepted"] == 10
    viewer = live_on(b, run_id)  # a viewer on b: live, with the history so far
    assert viewer.hello["run"]["source"] == "external"
    assert viewer.hello["run"]["layers"] == [4, 8, 2]
    assert viewer.hello["history"]["step"] == list(range(1, 11))
    assert post(a, run_id, batch(11)).json()["state"] == "running"
    wait_until(lambda: viewer.steps()[-1:] == [20], 10, "the second batch on b")
    assert viewer.steps() == list(range(1, 21))
    assert viewer.losses() == pytest.approx([1.0 / s for s in range(1, 21)], rel=1e-6)

    r = control(b, run_id, "pause")  # the presenter is on b; the script's run is on a
    assert r.status_code == 200 and r.json()["state"] == "paused", r.text
    assert run_of(a, run_id)["state"] == "paused"
    assert post(a, run_id, batch(21)).json()["state"] == "paused"  # the script hears it
    r = control(b, run_id, "step")
    assert r.status_code == 409, r.text  # as on one process: an outside run has no step
    assert control(b, run_id, "resume").json()["state"] == "running"

    url = f"{a.ws_url}/ws/ingest/{run_id}"
    with connect(url, open_timeout=10) as ingest:  # the script's socket hears a stop from b
        assert json.loads(ingest.recv(timeout=10)) == {"type": "state", "state": "running"}
        assert control(b, run_id, "stop").json()["state"] == "stopped"
        assert json.loads(ingest.recv(timeout=10)) == {"type": "state", "state": "stopped"}
    end = wait_until(viewer.ended, 10, "the end on b")
    assert end["state"] == "stopped"
    assert viewer.steps() == list(range(1, 31))
    viewer.close()
    wait_until(lambda: run_of(b, run_id)["state"] == "stopped", 10, "the stored stop")
