"""Weight snapshots at evaluations: bounded, thinned evenly, answered by `GET /model?step=N`."""

import csv
import io
import sqlite3

import numpy as np
import pytest

from app.live.snapshots import (
    MAX_SNAPSHOTS,
    MIN_SNAPSHOTS,
    SNAPSHOT_BUDGET,
    SnapshotPlan,
    snapshot_cap,
)
from app.store import DB_NAME, RunStore

LOSS_TOLERANCE = 1e-4  # float32 weights reproduce an evaluation's loss to about 6 digits


def kept_after(plan: SnapshotPlan, n: int) -> list[int]:
    """Feed n evaluations (at steps 0, 10, 20, ...) and replay the keeps and drops."""
    stored: set[int] = set()
    for k in range(n):
        keep, dropped = plan.add(10 * k)
        assert not set(dropped) - stored  # only what was kept is ever dropped
        stored -= set(dropped)
        if keep:
            stored.add(10 * k)
    assert sorted(stored) == [s for _, s in plan.kept]
    return sorted(stored)


@pytest.mark.parametrize("n", [1, 5, 16, 17, 100, 1000, 12_345])
def test_the_plan_keeps_every_eval_up_to_the_cap_then_an_even_spread(n):
    cap = 16
    kept = kept_after(SnapshotPlan(cap), n)
    if n <= cap:
        assert kept == [10 * k for k in range(n)]
    else:
        assert cap // 2 <= len(kept) <= cap
        gaps = set(np.diff(kept))
        assert len(gaps) == 1  # evenly spaced
        assert kept[0] == 0 and 10 * (n - 1) - kept[-1] < gaps.pop()  # from the start to now


def test_the_cap_follows_the_network_size():
    assert snapshot_cap([2, 8, 8, 1]) == MAX_SNAPSHOTS
    big = [64, 256, 256, 256, 10]  # about 150,000 parameters
    assert MIN_SNAPSHOTS <= snapshot_cap(big) < MAX_SNAPSHOTS
    params = 64 * 256 + 256 + 2 * (256 * 256 + 256) + 256 * 10 + 10
    assert snapshot_cap(big) * 4 * params <= SNAPSHOT_BUDGET


def snapshot(scale: float) -> dict:
    return {
        "weights": [np.full((2, 3), scale, np.float32), np.full((3, 1), -scale, np.float32)],
        "biases": [np.zeros(3, np.float32), np.ones(1, np.float32)],
        "activations": ["tanh", "sigmoid"],
        "loss": "bce",
    }


def test_the_store_answers_the_newest_snapshot_at_or_before_a_step(tmp_path):
    store = RunStore(tmp_path)
    store.create_run("r", {}, [2, 3, 1], 0.0)
    store.append_snapshot("r", 0, snapshot(0.0))
    store.append_snapshot("r", 50, snapshot(0.5))
    store.flush()
    store.append_snapshot("r", 100, snapshot(1.0))  # still buffered
    for flushed in (False, True):
        if flushed:
            store.flush()
        assert store.read_snapshot("r", 49)["step"] == 0
        got = store.read_snapshot("r", 60)
        assert got["step"] == 50 and got["snapshot"] is True
        assert got["layers"][0]["weights"] == [[0.5] * 3] * 2
        assert got["layers"][1] == {
            "weights": [[-0.5]] * 3,
            "biases": [1.0],
            "activation": "sigmoid",
        }
        assert got["loss"] == "bce"
        assert store.read_snapshot("r", 10**12)["step"] == 100
    store.drop_snapshots("r", [50])
    store.append_snapshot("r", 150, snapshot(1.5))
    store.drop_snapshots("r", [150])  # dropped before it was ever written
    store.flush()
    assert store.read_snapshot("r", 60)["step"] == 0
    assert store.read_snapshot("r", 200)["step"] == 100
    assert RunStore(tmp_path).read_snapshot("r", 60)["step"] == 0  # on disk, not just in memory
    store.delete_run("r")
    assert store.read_snapshot("r", 200) is None


def eval_rows(api, run_id: str) -> dict[int, float]:
    text = api.client.get(f"/api/runs/{run_id}/metrics", params={"format": "csv"}).text
    return {
        int(r["step"]): float(r["train_loss"])
        for r in csv.DictReader(io.StringIO(text))
        if r["train_loss"]
    }


def train_loss(model: dict, x: np.ndarray, y: np.ndarray) -> float:
    a = x
    for layer in model["layers"][:-1]:
        a = np.tanh(a @ np.array(layer["weights"]) + np.array(layer["biases"]))
    last = model["layers"][-1]
    z = (a @ np.array(last["weights"]) + np.array(last["biases"])).ravel()
    return float(np.mean(np.logaddexp(0, z) - y * z))


def test_a_stored_run_answers_its_weights_as_they_were_at_a_step(api):
    run_id = api.create(dataset="xor", hidden=[5], steps_per_second=None, max_steps=400)
    api.wait_state(run_id, "finished")
    losses = eval_rows(api, run_id)
    assert len(losses) > 5
    data = api.client.get(f"/api/runs/{run_id}/data").json()
    x, y = np.array(data["train"]["x"]), np.array(data["train"]["y"], dtype=float)
    steps = sorted(losses)
    for asked in (steps[1], steps[len(steps) // 2] + 1, 10**9):
        r = api.client.get(f"/api/runs/{run_id}/model", params={"step": asked})
        assert r.status_code == 200, r.text
        model = r.json()
        at = max(s for s in steps if s <= asked)
        assert model["step"] == at and model["snapshot"] is True
        assert model["layer_sizes"] == [2, 5, 1] and model["loss"] == "cross-entropy"
        assert train_loss(model, x, y) == pytest.approx(losses[at], rel=LOSS_TOLERANCE)
    early = api.client.get(f"/api/runs/{run_id}/model", params={"step": steps[1]}).json()
    final = api.client.get(f"/api/runs/{run_id}/model").json()
    assert early["layers"][0]["weights"] != final["layers"][0]["weights"]  # not the final weights
    assert "snapshot" not in final


def test_a_live_run_answers_its_snapshots_too(api, wait_until):
    run_id = api.create(steps_per_second=200, max_steps=100_000)

    def snapshot_now():
        r = api.client.get(f"/api/runs/{run_id}/model", params={"step": 10**6})
        return r.status_code == 200 and r.json()

    model = wait_until(snapshot_now, what="a snapshot of the live run")
    assert model["snapshot"] is True and model["step"] >= 0
    api.control(run_id, "stop")


@pytest.mark.parametrize("step", ["-1", "abc", "1.5", str(2**63)])
def test_a_bad_step_is_refused_in_the_one_error_shape(api, step):
    run_id = api.create(steps_per_second=None, max_steps=50)
    api.wait_state(run_id, "finished")
    r = api.client.get(f"/api/runs/{run_id}/model", params={"step": step})
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], list) and r.json()["detail"][0]["loc"][-1] == "step"


def test_no_snapshot_is_a_404_in_words(api):
    r = api.client.get("/api/runs/nope/model", params={"step": 5})
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    run_id = api.create(steps_per_second=None, max_steps=50)
    api.wait_state(run_id, "finished")
    r = api.client.get(f"/api/runs/{run_id}/model", params={"step": 5})
    assert r.status_code == 200 and r.json()["step"] == 0  # the first evaluation, before step 1


def test_a_long_run_keeps_a_bounded_even_spread(api, tmp_path, wait_until):
    run_id = api.create(steps_per_second=None, max_steps=9000, hidden=[4])  # 361 evaluations
    api.wait_state(run_id, "finished", timeout=60)
    db = sqlite3.connect(tmp_path / "data" / DB_NAME)

    def on_disk() -> list[int]:
        sql = "SELECT step FROM snapshots WHERE run_id = ? ORDER BY step"
        steps = [row[0] for row in db.execute(sql, (run_id,))]
        return steps if steps and steps[-1] == 9000 else []

    steps = wait_until(on_disk, what="the snapshots written to disk")
    assert MAX_SNAPSHOTS // 2 <= len(steps) <= MAX_SNAPSHOTS
    assert len(set(np.diff(steps))) == 1  # evenly spread, from step 0 to the end
