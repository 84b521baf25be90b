"""A user's script streams a run into one process; viewers and presenters on another hear it."""

# ruff: noqa: F811 - the fixtures come from tests/_redis.py and tests/_scaling.py

import json

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.broker import keys
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


def test_steps_sent_to_another_process_are_refused_naming_the_home(web, redis_server, wait_until):
    """Only the run's home takes a script's steps; another process says which one it is
    (421, or close 4021 on the ingest socket) and stores nothing of them (not a 409)."""
    a, b = web(), web()
    run_id = outside_run(a)
    assert post(a, run_id, batch(1)).status_code == 200
    home = redis.Redis.from_url(redis_server.url).hget(keys.run(run_id), "home").decode()
    viewer = live_on(b, run_id)  # b has attached the run: it is in b's runs, not b's to feed
    r = post(b, run_id, batch(11))
    assert r.status_code == 421, r.text
    detail = r.json()["detail"]
    assert f"process {home} at 127.0.0.1:{a.port}" in detail and "send them there" in detail
    ingest = connect(f"{b.ws_url}/ws/ingest/{run_id}", open_timeout=10)
    with ingest, pytest.raises(ConnectionClosed) as closed:
        ingest.recv(timeout=10)
    assert closed.value.rcvd.code == 4021
    assert f"process {home} at 127.0.0.1:{a.port}" in closed.value.rcvd.reason
    assert post(a, run_id, batch(11)).json()["accepted"] == 10  # none of b's were kept
    wait_until(lambda: viewer.steps()[-1:] == [20], 10, "the home's second batch on b")
    assert viewer.steps() == list(range(1, 21))
    assert post(a, run_id, {**batch(21), "end": "finished"}).json()["state"] == "finished"
    wait_until(viewer.ended, 10, "the end on b")
    r = post(b, run_id, batch(31))  # ended: no process takes steps any more
    assert r.status_code == 409 and "is finished" in r.json()["detail"], r.text
    viewer.close()
