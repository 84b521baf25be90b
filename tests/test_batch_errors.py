"""A step batch of the wrong shape is a 422 in the one error shape, naming what is wrong."""

import logging
import warnings

import pytest
from pydantic import ValidationError

from app.live.ingest import BATCH_RULES, StepBatch

LAYERS = ["fc1", "fc2"]


def outside(api) -> str:
    r = api.client.post("/api/runs/external", json={"name": "mine", "layers": LAYERS})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def post(api, run_id: str, body: dict):
    return api.client.post(f"/api/runs/{run_id}/steps", json=body)


def test_columns_of_different_lengths_are_one_422_naming_each_column_and_length(serve, caplog):
    body = {"step": [1, 2, 3], "loss": [1.0], "t": [0.0, 1.0], "accuracy": [0.5, 0.6, 0.7]}
    with serve() as api, warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning instead of a refusal fails the test
        caplog.set_level(logging.WARNING)
        run_id = outside(api)
        r = post(api, run_id, body)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/json"
        detail = r.json()["detail"]
        assert [e["loc"] for e in detail] == [["body", "t"], ["body", "loss"]]
        assert {e["type"] for e in detail} == {"column_length"}
        t, loss = detail
        assert t["msg"].startswith("t has 2 values for 3 steps")
        assert loss["msg"].startswith("loss has 1 values for 3 steps")
        for entry in detail:
            assert "lengths: step 3, t 2, loss 1, accuracy 3" in entry["msg"]
            assert entry["ctx"]["steps"] == 3 and entry["ctx"]["column"] in ("t", "loss")
        assert t["ctx"]["length"] == 2 and loss["ctx"]["length"] == 1
        assert len(r.content) < 1000  # the body is not echoed back
        assert api.metrics(run_id)["beats"]["step"] == []  # nothing of it was stored
        assert api.run(run_id)["state"] == "running"
    assert [rec for rec in caplog.records if rec.name.startswith("backbeat")] == []


def test_per_layer_columns_are_counted_in_rows(api):
    run_id = outside(api)
    r = post(api, run_id, {"step": [1, 2], "loss": [1.0, 1.0], "grad_norm": [[0.1, 0.2]]})
    assert r.status_code == 422, r.text
    (entry,) = r.json()["detail"]
    assert entry["loc"] == ["body", "grad_norm"] and entry["type"] == "column_length"
    assert entry["msg"].startswith("grad_norm has 1 rows for 2 steps")


def test_a_row_of_the_wrong_width_is_a_422_entry_naming_the_row(api):
    run_id = outside(api)
    body = {"step": [1, 2], "loss": [1.0, 1.0], "act_rms": [[0.1, 0.2], [0.3]]}
    r = post(api, run_id, body)
    assert r.status_code == 422, r.text
    (entry,) = r.json()["detail"]
    assert entry["loc"] == ["body", "act_rms", 1] and entry["type"] == "row_width"
    assert entry["msg"].startswith("each act_rms row needs 2 values, one per layer; row 1 has 1")
    assert api.metrics(run_id)["beats"]["step"] == []


def test_step_order_and_range_are_named_too(api):
    run_id = outside(api)
    r = post(api, run_id, {"step": [2, 1], "loss": [1.0, 1.0]})
    assert r.status_code == 422
    assert [(e["loc"], e["type"]) for e in r.json()["detail"]] == [(["body", "step"], "step_order")]
    r = post(api, run_id, {"step": [-1], "loss": [1.0]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "step", 0]  # a range the schema states


def test_the_document_states_the_rules_and_the_step_range(api):
    schema = api.client.get("/openapi.json").json()["components"]["schemas"]["StepBatch"]
    assert "column_length" in schema["description"] and "row_width" in schema["description"]
    assert schema["properties"]["step"]["items"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 2**53,
    }


def test_the_ingest_socket_names_the_column_too(api):
    run_id = outside(api)
    with api.client.websocket_connect(f"/ws/ingest/{run_id}") as ws:
        assert ws.receive_json()["state"] == "running"
        ws.send_json({"type": "steps", "step": [1, 2], "loss": [1.0]})
        error = ws.receive_json()
        assert error["type"] == "error"
        assert error["detail"].startswith("loss: loss has 1 values for 2 steps")
        assert error["detail"].endswith("nothing was stored")


def test_every_batch_rule_is_raised_with_its_own_type():
    seen = set()
    for body in (
        {"step": [1, 2], "loss": [1.0]},
        {"step": [2, 1], "loss": [1.0, 1.0]},
    ):
        with pytest.raises(ValidationError) as refused:
            StepBatch.model_validate(body)
        seen |= {e["type"] for e in refused.value.errors()}
    assert seen | {"row_width"} == set(BATCH_RULES)


def test_an_outside_runs_limits_are_in_the_schema_and_name_the_field(api):
    spec = api.client.get("/openapi.json").json()["components"]["schemas"]["OutsideRunSpec"]
    props = spec["properties"]
    assert props["layers"]["items"] == {"type": "string", "minLength": 1, "maxLength": 100}
    sizes = props["sizes"]["anyOf"][0]
    assert sizes["items"] == {"type": "integer", "minimum": 1, "maximum": 1_000_000}
    assert "one entry more than `layers`" in props["sizes"]["description"]
    assert props["config"]["propertyNames"] == {"maxLength": 100}
    refusals = [
        ({"layers": ["fc1", ""]}, ["body", "layers", 1]),
        ({"layers": ["a"], "sizes": [2, 0]}, ["body", "sizes", 1]),
        ({"config": {"k" * 101: 1}}, ["body", "config", "k" * 101, "[key]"]),
        ({"layers": ["a"], "sizes": [2]}, ["body"]),  # the one rule between fields
    ]
    integral = {"layers": ["a"], "sizes": [4.0, 2]}  # JSON has one number type: 4.0 is 4
    assert api.client.post("/api/runs/external", json=integral).status_code == 201
    for body, loc in refusals:
        r = api.client.post("/api/runs/external", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"][0]["loc"] == loc, r.text
