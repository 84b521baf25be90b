"""The HTTP API: every endpoint, every error, and the maths behind /model and /data."""

import csv
import io
import threading

import numpy as np
import pytest

from app import __version__

QUICK = {
    "dataset": "xor",
    "steps_per_second": None,
    "stop_at_convergence": False,
    "max_steps": 300,
}  # done in ~10 ms
HELD = {
    "dataset": "xor",
    "steps_per_second": None,
    "stop_at_convergence": False,
    "start_paused": True,
}  # waits for controls
# relative: the engine evaluates in float32 (eps 1.2e-7, a few layers deep); a wrong weight
# orientation, data point or loss formula is off by percent, not parts per million
LOSS_TOLERANCE = 1e-5


def test_health(api):
    health = api.client.get("/api/health").json()
    assert health == {"status": "ok", "version": __version__, "connections": 0}
    run_id = api.create(**{"dataset": "xor", "start_paused": True})
    with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        ws.receive_text()
        assert api.client.get("/api/health").json()["connections"] == 1


def test_datasets_describe_task_features_and_parameters(api):
    sets = {d["name"]: d for d in api.client.get("/api/datasets").json()}
    assert set(sets) == {"circle", "xor", "gauss", "spiral", "moons", "plane", "multigauss",
                         "digits"}  # fmt: skip
    assert sets["plane"]["task"] == "regression" and sets["xor"]["task"] == "classification"
    assert sets["digits"]["n_inputs"] == 64 and sets["digits"]["n_classes"] == 10
    assert "x1*x2" in sets["spiral"]["features"]
    assert sets["spiral"]["default_features"] == ["x1", "x2"]
    noise = sets["spiral"]["params"]["noise"]
    assert noise == {"default": 0.0, "min": 0.0, "max": 0.5}
    assert sets["spiral"]["params"]["n_samples"]["default"] == 500


def test_create_answers_201_and_the_run_is_listed_and_described(api):
    r = api.client.post("/api/runs", json={**HELD, "hidden": [5, 3], "seed": 11})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "state"} and body["state"] in ("starting", "paused")
    run = api.wait_state(body["id"], "paused")
    assert run["id"] == body["id"] and run["step"] == 0
    assert run["layers"] == [4, 5, 3, 1]  # the default features: x1, x2, sin x1, sin x2
    assert run["config"]["seed"] == 11 and run["config"]["hidden"] == [5, 3]
    assert run["config"]["learning_rate"] == 0.03  # defaults filled in
    listed = api.client.get("/api/runs").json()
    assert [r["id"] for r in listed] == [body["id"]]
    assert listed[0]["state"] == "paused"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("learning_rate", 100.0),
        ("dataset", "nope"),
        ("hidden", [0]),
        ("features", ["x3"]),
        ("batch_size", 0),
        ("steps_per_second", 0.0),
        ("activation", "gelu"),
        ("bogus", 1),
    ],
)
def test_invalid_config_is_422_naming_the_field(api, field, value):
    r = api.client.post("/api/runs", json={field: value})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"][:2] == ["body", field]
    assert isinstance(error["msg"], str) and error["msg"]
    assert api.client.get("/api/runs").json() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/runs/{id}"),
        ("get", "/api/runs/{id}/model"),
        ("get", "/api/runs/{id}/data"),
        ("get", "/api/runs/{id}/metrics"),
        ("delete", "/api/runs/{id}"),
        ("post", "/api/runs/{id}/control"),
    ],
)
def test_unknown_run_is_404_with_a_message(api, method, path):
    kwargs = {"json": {"action": "pause"}} if method == "post" else {}
    r = api.client.request(method, path.format(id="nosuchrun"), **kwargs)
    assert r.status_code == 404
    assert "nosuchrun" in r.json()["detail"]


def test_controls_pause_resume_step_tempo_stop(api, wait_until):
    run_id = api.create(**{**HELD, "steps_per_second": 50.0})
    api.wait_state(run_id, "paused")

    before = api.run(run_id)["step"]
    for k in range(1, 4):  # each step advances exactly one and answers with its metrics
        r = api.control(run_id, "step")
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["state"] == "paused" and answer["step"] == before + k
        assert answer["metrics"]["step"] == before + k
        assert len(answer["metrics"]["grad_norm"]) == 3
        assert api.run(run_id)["step"] == before + k
    metrics = api.metrics(run_id)  # a step's answer comes after its record is kept
    assert metrics["beats"]["step"] == [1, 2, 3]
    # the store keeps float32: the stepped loss survives to about 7 digits
    assert metrics["beats"]["loss"][-1] == pytest.approx(answer["metrics"]["loss"], rel=1e-6)

    assert api.control(run_id, "resume").json()["state"] == "running"
    wait_until(lambda: api.run(run_id)["step"] > 5, what="the resumed run to train")
    r = api.control(run_id, "tempo", steps_per_second=400.0)
    assert r.status_code == 200 and r.json()["steps_per_second"] == 400.0
    assert api.run(run_id)["steps_per_second"] == 400.0
    assert api.control(run_id, "tempo", steps_per_second=None).json()["steps_per_second"] is None
    paused = api.control(run_id, "pause").json()
    assert paused["state"] == "paused"
    # the pause lands between steps: the one in flight (if any) still completes
    held = api.control(run_id, "step").json()["step"]
    assert paused["step"] + 1 <= held <= paused["step"] + 2
    r = api.control(run_id, "stop")
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    assert r.json()["step"] == held  # a paused run stops where it was
    assert api.run(run_id)["state"] == "stopped"


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ([], "resume"),  # already running
        ([], "step"),  # only a paused run steps
        (["pause"], "pause"),
        (["stop"], "pause"),
        (["stop"], "stop"),
        (["stop"], "resume"),
        (["stop"], "step"),
        (["stop"], "tempo"),
    ],
)
def test_nonsense_control_is_409(api, setup, action):
    run_id = api.create(dataset="xor", steps_per_second=20.0)
    api.wait_state(run_id, "running")
    for first in setup:
        assert api.control(run_id, first).status_code == 200
    r = api.control(run_id, action, steps_per_second=5.0)
    assert r.status_code == 409
    assert action in r.json()["detail"]


def test_control_body_is_validated(api):
    run_id = api.create(**HELD)
    r = api.control(run_id, "rewind")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "action"]
    r = api.control(run_id, "tempo", steps_per_second=-1)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "steps_per_second"]


def test_more_live_runs_than_the_cap_is_429(serve):
    with serve(max_concurrent_runs=1) as api:
        first = api.create(**HELD)
        r = api.client.post("/api/runs", json=HELD)
        assert r.status_code == 429
        assert "1" in r.json()["detail"]
        api.control(first, "stop")
        api.create(**HELD)  # a stopped run frees its slot


def test_concurrent_creates_cannot_exceed_the_cap(serve):
    with serve(max_concurrent_runs=2) as api:
        codes: list[int] = []

        def create() -> None:  # digits takes a while to set up: the requests overlap
            r = api.client.post("/api/runs", json={**HELD, "dataset": "digits"})
            codes.append(r.status_code)

        threads = [threading.Thread(target=create) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(codes) == [201, 201, 429, 429, 429]


def forward(model: dict, x: np.ndarray) -> np.ndarray:
    """An independent forward pass over the exported parameters (the logits of the output)."""
    act = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0), "linear": lambda z: z}
    a = x
    for k, layer in enumerate(model["layers"]):
        z = a @ np.array(layer["weights"]) + np.array(layer["biases"])
        a = z if k == len(model["layers"]) - 1 else act[layer["activation"]](z)
    return a


@pytest.mark.parametrize(
    ("dataset", "activation"), [("xor", "relu"), ("circle", "tanh"), ("plane", "tanh")]
)
def test_model_and_data_reproduce_the_reported_train_loss(api, dataset, activation):
    config = {"dataset": dataset, "activation": activation, "hidden": [5, 3], "noise": 0.2}
    run_id = api.create(**config, steps_per_second=None, max_steps=400)
    run = api.wait_state(run_id, "finished")
    model = api.client.get(f"/api/runs/{run_id}/model").json()
    data = api.client.get(f"/api/runs/{run_id}/data").json()

    assert model["step"] == run["step"] == 400
    shapes = [np.array(layer["weights"]).shape for layer in model["layers"]]
    assert shapes == [(2, 5), (5, 3), (3, 1)]  # weights[i][j]: input i -> unit j
    x, y = np.array(data["train"]["x"]), np.array(data["train"]["y"], dtype=float)
    z = forward(model, x).ravel()
    if data["task"] == "classification":
        assert model["layers"][-1]["activation"] == "sigmoid"
        loss = np.mean(np.logaddexp(0, z) - y * z)  # binary cross-entropy from the logits
    else:
        assert model["layers"][-1]["activation"] == "linear"
        loss = 0.5 * np.mean((z - y) ** 2)
    assert loss == pytest.approx(run["summary"]["train_loss"], rel=LOSS_TOLERANCE)


def test_data_is_what_the_network_sees(api):
    features = ["x1", "x2", "x1*x2", "sin(x1)"]
    run_id = api.create(**HELD, features=features, n_samples=200, train_ratio=0.7, noise=0.1)
    data = api.client.get(f"/api/runs/{run_id}/data").json()
    assert data["features"] == features and data["task"] == "classification"
    x, p = np.array(data["train"]["x"]), np.array(data["train"]["points"])
    assert x.shape == (140, 4) and len(data["train"]["y"]) == 140
    assert len(data["test"]["x"]) == len(data["test"]["y"]) == 60
    assert set(data["train"]["y"]) == {0, 1}
    np.testing.assert_allclose(x[:, 2], p[:, 0] * p[:, 1])
    np.testing.assert_allclose(x[:, 3], np.sin(p[:, 0]))
    assert api.run(run_id)["layers"][0] == 4


def test_metrics_json_csv_and_every(api):
    run_id = api.create(**QUICK, hidden=[4])
    api.wait_state(run_id, "finished")
    full = api.metrics(run_id)
    assert full["layers"] == [2, 4, 1]
    steps = full["beats"]["step"]
    assert steps == list(range(1, 301))
    for group in ("beats", "echoes"):
        for name, values in full[group].items():
            assert len(values) == 300, name
    assert all(len(row) == 2 for row in full["beats"]["act_rms"])
    assert all(len(row) == 2 for row in full["echoes"]["grad_norm"])
    assert len(full["crescendo"]) == 300

    thinned = api.metrics(run_id, every=7)
    assert thinned["beats"]["step"] == steps[::7]
    assert thinned["beats"]["loss"] == full["beats"]["loss"][::7]

    r = api.client.get(f"/api/runs/{run_id}/metrics", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    evals = [row for row in table if row["test_loss"]]
    rows = [row for row in table if row["loss"]]  # step 0 has an evaluation and no step metrics
    assert len(rows) == 300 and [row["step"] for row in table if not row["loss"]] == ["0"]
    assert {"step", "loss", "grad_norm_0", "grad_norm_1", "act_rms_1", "event"} <= set(rows[0])
    assert evals and int(evals[0]["step"]) == 0
    assert all(float(e["train_loss"]) > 0 and 0 <= float(e["test_accuracy"]) <= 1 for e in evals)

    assert [int(row["step"]) for row in rows] == steps
    assert [float(row["loss"]) for row in rows] == full["beats"]["loss"]
    assert [float(row["grad_norm_1"]) for row in rows] == [
        g[1] for g in full["echoes"]["grad_norm"]
    ]
    r = api.client.get(f"/api/runs/{run_id}/metrics", params={"format": "xml"})
    assert r.status_code == 422
    assert api.client.get(f"/api/runs/{run_id}/metrics", params={"every": 0}).status_code == 422


def test_delete_then_404(serve):
    with serve(max_concurrent_runs=1) as api:
        done = api.create(**QUICK)
        api.wait_state(done, "finished")
        assert api.client.delete(f"/api/runs/{done}").status_code == 204
        assert api.client.get(f"/api/runs/{done}").status_code == 404
        assert api.client.get(f"/api/runs/{done}/metrics").status_code == 404
        assert api.client.delete(f"/api/runs/{done}").status_code == 404

        live = api.create(dataset="xor", steps_per_second=50.0)  # deleting stops it first
        api.wait_state(live, "running")
        assert api.client.delete(f"/api/runs/{live}").status_code == 204
        assert api.client.get(f"/api/runs/{live}").status_code == 404
        assert api.client.get("/api/runs").json() == []
        api.create(**HELD)  # its slot under the cap of one is free again


def test_metrics_range_and_cues_for_sound_exports(api):
    # main's old defaults (SGD on x1, x2): too slow to chime in 300 steps
    run_id = api.create(**QUICK, hidden=[4], optimizer="sgd", features=["x1", "x2"])
    api.wait_state(run_id, "finished")
    part = api.metrics(run_id, start=10, stop=20)
    assert part["beats"]["step"] == list(range(10, 20))
    assert len(part["echoes"]["grad_norm"]) == len(part["crescendo"]) == 10
    assert part["events"] == []  # finished without a chime: nothing to sound

    diverging = {"dataset": "plane", "activation": "relu", "learning_rate": 10}
    run_id = api.create(**{**QUICK, **diverging, "max_steps": 2000})
    api.wait_state(run_id, "diverged")
    cues = api.metrics(run_id)["events"]
    alarms = [e for e in cues if e["type"] == "alarm"]
    assert len(alarms) == 1 and alarms[0]["step"] == api.run(run_id)["step"]
    assert {e["type"] for e in cues} <= {"chime", "alarm", "overfit", "plateau", "plateau_end"}
