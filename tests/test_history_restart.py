"""Run history outlives the server: restarts, crashes, and runs that repeat exactly."""

import json
import os
import signal
import sqlite3
import sys
from contextlib import closing

import httpx

from app.store import DB_NAME

QUICK = {"dataset": "xor", "steps_per_second": None, "stop_at_convergence": False, "max_steps": 300}


def without_time(metrics: dict) -> dict:
    """Metrics minus the wall-clock column, the one thing a rerun may not repeat."""
    return {**metrics, "id": None, "beats": {k: v for k, v in metrics["beats"].items() if k != "t"}}


def test_history_survives_a_restart(serve, tmp_path):
    data = tmp_path / "history"
    with serve(data) as api:
        done = api.create(**QUICK, hidden=[4])
        api.wait_state(done, "finished")
        held = api.create(**{**QUICK, "start_paused": True})
        api.control(held, "step")
        before = {
            "metrics": api.metrics(done),
            "model": api.client.get(f"/api/runs/{done}/model").json(),
            "run": api.run(done),
        }
    # the paused run was live when the server stopped: it cannot resume, so it is interrupted
    with serve(data) as api:
        listed = {r["id"]: r for r in api.client.get("/api/runs").json()}
        assert set(listed) == {done, held}
        assert listed[done]["state"] == "finished" and listed[done]["step"] == 300
        assert listed[held]["state"] == "interrupted" and listed[held]["step"] == 1
        assert api.metrics(held)["beats"]["step"] == [1]
        assert api.metrics(done) == before["metrics"]
        assert api.client.get(f"/api/runs/{done}/model").json() == before["model"]
        run = api.run(done)
        assert run["summary"] == before["run"]["summary"]
        assert run["latest"]["step"] == 300
        assert api.control(done, "resume").status_code == 409  # known, but over
        with api.client.websocket_connect(f"/ws/runs/{done}") as ws:  # a stored run's hello
            hello = json.loads(ws.receive_text())
        assert hello["type"] == "hello" and hello["run"]["state"] == "finished"
        assert hello["history"]["step"] == list(range(1, 301))
        assert hello["last_eval"]["step"] == 300 and hello["last_eval"]["grid"]
        new = api.create(**QUICK)
        assert [r["id"] for r in api.client.get("/api/runs").json()][0] == new  # newest first


def _flushed_steps(data_dir, run_id: str) -> int:
    """Steps of a run that have reached the database file (what survives a crash)."""
    path = data_dir / DB_NAME
    if not path.exists():
        return 0
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        row = db.execute("SELECT COALESCE(SUM(n), 0) FROM chunks WHERE run_id = ?", (run_id,))
        return row.fetchone()[0]


def test_a_crash_leaves_the_run_interrupted_with_its_flushed_metrics(
    spawn, serve, tmp_path, wait_until
):
    data = tmp_path / "crashed"
    server = spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.web.server:create_app",
            "--factory",
            "--port={port}",
        ],
        env={"BACKBEAT_DATA": str(data)},
    ).wait_healthy()
    config = {"dataset": "xor", "steps_per_second": None, "max_steps": 10_000_000}
    config["stop_at_convergence"] = False  # plays on until the crash
    r = httpx.post(f"{server.url}/api/runs", json=config, timeout=10)
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    flushed = wait_until(lambda: _flushed_steps(data, run_id) > 1000, 20, "a flush to disk")

    os.kill(server.proc.pid, signal.SIGKILL)  # no lifespan shutdown, no final flush
    server.proc.wait(10)

    with serve(data) as api:
        run = api.run(run_id)
        assert run["state"] == "interrupted"
        steps = api.metrics(run_id)["beats"]["step"]
        assert len(steps) >= flushed
        assert steps == list(range(1, len(steps) + 1))  # whole chunks, no gaps
        assert run["step"] >= 1
        summary = run["summary"]  # filled in from the last stored evaluation
        assert summary["state"] == "interrupted" and summary["train_loss"] > 0


def test_the_same_seed_gives_identical_metrics(api):
    config = {**QUICK, "dataset": "spiral", "noise": 0.2, "optimizer": "adam", "seed": 7}
    first, second = api.create(**config), api.create(**config)
    api.wait_state(first, "finished")
    api.wait_state(second, "finished")
    other = api.create(**{**config, "seed": 8})
    api.wait_state(other, "finished")
    a, b, c = (without_time(api.metrics(r)) for r in (first, second, other))
    assert a == b
    assert a["beats"]["loss"] != c["beats"]["loss"]  # the seed does matter
