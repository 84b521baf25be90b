"""Live knobs over HTTP and the websocket: the run keeps its id and steps on, a `change`
event is streamed, stored, replayed and exported; structural settings answer 409."""

import pytest
from test_config import INVALID

from app.engine.config import STRUCTURAL_FIELDS

HELD = {
    "dataset": "xor",
    "steps_per_second": None,
    "stop_at_convergence": False,
    "start_paused": True,
}
PACED = {"dataset": "xor", "steps_per_second": 200.0, "stop_at_convergence": False}
LIVE_INVALID = {k: INVALID[k] for k in ("learning_rate", "batch_size", "optimizer")}


def set_(api, run_id, **changes):
    return api.control(run_id, "set", changes=changes)


def test_set_changes_a_running_run_which_keeps_its_id_and_steps_on(api, wait_until):
    run_id = api.create(**PACED)
    wait_until(lambda: api.run(run_id)["step"] > 20, what="some steps")
    r = set_(api, run_id, learning_rate=1.0, optimizer="momentum")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == run_id and body["state"] == "running"
    assert body["config"]["learning_rate"] == 1.0 and body["config"]["optimizer"] == "momentum"
    assert "fresh state" in body["notes"]["optimizer"]
    at = body["step"]
    run = wait_until(lambda: (run := api.run(run_id))["step"] > at + 20 and run, what="steps")
    assert run["state"] == "running" and run["config"]["learning_rate"] == 1.0
    with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        hello = ws.receive_json()
    changes = [e for e in hello["events"] if e["type"] == "change"]
    assert len(changes) == 1 and changes[0]["changes"] == {
        "learning_rate": 1.0,
        "optimizer": "momentum",
    }
    assert hello["run"]["config"]["learning_rate"] == 1.0
    api.control(run_id, "stop")
    exported = api.metrics(run_id)
    assert [e["type"] for e in exported["events"]].count("change") == 1
    csv_text = api.client.get(f"/api/runs/{run_id}/metrics", params={"format": "csv"}).text
    assert "change learning_rate=1.0 optimizer=momentum" in csv_text
    with api.client.websocket_connect(f"/ws/runs/{run_id}?replay=1&steps_per_second=100000") as ws:
        seen = []
        while (m := ws.receive_json())["type"] != "end":
            seen.append(m)
    assert [m["changes"] for m in seen if m["type"] == "change"] == [changes[0]["changes"]]


def test_set_on_a_paused_run_applies_before_its_next_step(api):
    run_id = api.create(**HELD)
    api.wait_state(run_id, "paused")
    assert set_(api, run_id, batch_size=5).json()["config"]["batch_size"] == 5
    assert api.control(run_id, "step").status_code == 200
    with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        hello = ws.receive_json()
    (change,) = [e for e in hello["events"] if e["type"] == "change"]
    assert change["step"] == 0 and hello["run"]["state"] == "paused"


@pytest.mark.parametrize("field", STRUCTURAL_FIELDS)
def test_a_structural_setting_answers_409_and_the_run_plays_on(api, field):
    run_id = api.create(**HELD)
    api.wait_state(run_id, "paused")
    r = set_(api, run_id, **{field: 1})
    assert r.status_code == 409 and "new run" in r.json()["detail"]
    assert api.run(run_id)["state"] == "paused"


@pytest.mark.parametrize(
    ("field", "value"),
    [(f, v) for f, (values, _) in LIVE_INVALID.items() for v in values],
)
def test_an_invalid_live_value_answers_422_naming_the_field(api, field, value):
    run_id = api.create(**HELD)
    r = set_(api, run_id, **{field: value})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == field


@pytest.mark.parametrize("body", [{}, {"changes": {}}, {"changes": {"learning_rate": None}}])
def test_a_set_without_usable_changes_answers_422(api, body):
    run_id = api.create(**HELD)
    r = api.control(run_id, "set", **body)
    assert r.status_code == 422 and r.json()["detail"]


def test_set_on_an_ended_run_answers_409_and_on_an_unknown_run_404(api):
    run_id = api.create(dataset="xor", steps_per_second=None, max_steps=50)
    api.wait_state(run_id, "finished", "converged")
    assert set_(api, run_id, learning_rate=0.1).status_code == 409
    assert set_(api, "nope", learning_rate=0.1).status_code == 404


def test_set_over_the_websocket_is_acknowledged_with_the_new_config(api):
    run_id = api.create(**HELD)
    api.wait_state(run_id, "paused")
    with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        ws.receive_json()
        ws.send_json({"type": "control", "action": "set", "changes": {"learning_rate": 0.3}})
        while (m := ws.receive_json())["type"] not in ("ack", "error"):
            pass
        assert m["type"] == "ack" and m["config"]["learning_rate"] == 0.3
        ws.send_json({"type": "control", "action": "set", "changes": {"hidden": [3]}})
        while (m := ws.receive_json())["type"] not in ("ack", "error"):
            pass
        assert m["type"] == "error" and "new run" in m["detail"] and m["status"] == 409


def test_post_runs_with_an_empty_body_uses_the_page_defaults(api):
    defaults = api.client.get("/api/defaults").json()
    r = api.client.post("/api/runs", json={})
    assert r.status_code == 201
    run_id = r.json()["id"]
    config = api.run(run_id)["config"]
    assert config == defaults and config["stop_at_convergence"] is True
    api.control(run_id, "stop")


def test_the_openapi_declares_the_control_answers_and_the_live_ranges(api):
    schema = api.client.get("/openapi.json").json()
    answers = schema["paths"]["/api/runs/{run_id}/control"]["post"]["responses"]
    assert {"200", "404", "409", "422"} <= set(answers)
    live = schema["components"]["schemas"]["LiveChanges"]["properties"]
    lr = live["learning_rate"]
    assert (lr["minimum"], lr["maximum"]) == (1e-5, 10.0)  # never null: omitted to keep it
    assert live["optimizer"]["enum"] == ["sgd", "momentum", "adam"]
