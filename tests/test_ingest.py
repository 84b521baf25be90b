"""Outside runs on the server: creation, columnar ingest, detectors, roles, limits, replay."""

import math

import pytest

from app.live.ingest import MAX_BATCH_STEPS
from app.web.routes import ingest
from app.web.security import RateLimit

LAYERS = ["fc1", "fc2"]


def outside(api, **spec) -> str:
    r = api.client.post("/api/runs/external", json={"name": "mine", "layers": LAYERS, **spec})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def steps(api, run_id: str, **batch):
    return api.client.post(f"/api/runs/{run_id}/steps", json=batch)


def batch(first: int, n: int, loss=lambda s: 1.0 / s, width: int = 2) -> dict:
    ids = list(range(first, first + n))
    return {
        "step": ids,
        "loss": [loss(s) for s in ids],
        "grad_norm": [[0.1 * (k + 1) * s for k in range(width)] for s in ids],
    }


def test_an_outside_run_is_listed_stored_exported_and_replayable(serve):
    with serve() as api:
        run_id = outside(api, sizes=[4, 8, 2], config={"optimizer": "adam", "lr": 0.001})
        assert steps(api, run_id, **batch(1, 50)).json() == {
            "accepted": 50,
            "skipped": 0,
            "state": "running",
        }
        r = steps(api, run_id, **batch(51, 10), end="finished")
        assert r.json()["state"] == "finished"
        listed = api.client.get("/api/runs").json()[0]
        assert listed["id"] == run_id and listed["config"]["dataset"] == "mine"
        record = api.run(run_id)
        assert record["layer_names"] == LAYERS and record["layers"] == [4, 8, 2]
        assert record["config"]["optimizer"] == "adam"
        cols = api.metrics(run_id)
        assert cols["beats"]["step"] == list(range(1, 61))
        assert cols["echoes"]["grad_norm"][9] == pytest.approx([1.0, 2.0], rel=1e-6)
        assert cols["crescendo"][-1] > cols["crescendo"][1] > 0  # the loss fell 60x
        csv = api.client.get(f"/api/runs/{run_id}/metrics", params={"format": "csv"}).text
        assert "update_ratio_0,update_ratio_1,train_loss" in csv.splitlines()[0]
        assert len(csv.splitlines()) == 61
        assert api.client.get(f"/api/runs/{run_id}/data").status_code == 404
        with api.client.websocket_connect(
            f"/ws/runs/{run_id}?replay=true&steps_per_second=5000&detail=full"
        ) as ws:
            hello = ws.receive_json()
            assert hello["run"]["layer_names"] == LAYERS and hello["run"]["state"] == "replaying"
            replayed = []
            while (m := ws.receive_json())["type"] != "end":
                if m["type"] == "frame":
                    replayed += m["beats"]["step"]
            assert replayed == list(range(1, 61))


def test_live_viewers_get_beats_and_echoes_with_layer_names(serve):
    with serve() as api:
        run_id = outside(api)
        with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
            hello = ws.receive_json()
            assert hello["run"]["layer_names"] == LAYERS and hello["run"]["source"] == "external"
            steps(api, run_id, **batch(1, 5))
            while (m := ws.receive_json())["type"] != "frame":
                pass
            assert m["beats"]["step"] == [1, 2, 3, 4, 5]
            assert m["echoes"]["grad_norm"][0] == pytest.approx([0.1, 0.2])


def test_a_malformed_batch_is_refused_whole_and_loses_nothing(serve):
    with serve() as api:
        run_id = outside(api)
        steps(api, run_id, **batch(1, 10))
        bad = [
            ({**batch(11, 3), "grad_norm": [[1.0], [1.0], [1.0]]}, "each grad_norm row needs 2"),
            ({**batch(11, 3), "loss": [1.0]}, "loss has 1 values for 3 steps"),
            ({"step": [12, 11], "loss": [1.0, 1.0]}, "steps must increase"),
            (batch(11, MAX_BATCH_STEPS + 1), "at most 1000"),
            ({"step": [11], "loss": ["x"]}, "valid number"),
            ({"step": [11], "loss": [1.0], "gradnorm": [[1, 2]]}, "Extra inputs"),
        ]
        for body, why in bad:
            r = steps(api, run_id, **body)
            assert r.status_code == 422, (body, r.text)
            assert why in r.text, r.text
        assert api.metrics(run_id)["beats"]["step"] == list(range(1, 11))
        assert api.run(run_id)["state"] == "running"
        again = steps(api, run_id, **batch(5, 10)).json()  # resent after a reconnect
        assert again == {"accepted": 4, "skipped": 6, "state": "running"}
        assert api.metrics(run_id)["beats"]["step"] == list(range(1, 15))


def events_of(api, run_id: str) -> list[dict]:
    """The sounding events a run recorded (the store has them as soon as they happen)."""
    store = api.client.app.state.store
    return store.read_events(run_id, types={"chime", "alarm", "overfit"})


def test_the_detectors_run_on_logged_values(serve):
    with serve() as api:
        diverging = outside(api)
        body = batch(1, 20, loss=lambda s: math.nan if s == 12 else 1.0)
        body["loss"] = [None if x != x else x for x in body["loss"]]
        assert steps(api, diverging, **body).json()["state"] == "diverged"
        assert api.metrics(diverging)["beats"]["step"] == list(range(1, 13))
        [alarm] = events_of(api, diverging)
        assert alarm == {"type": "alarm", "step": 12, "reason": "loss is not a finite number"}
        assert steps(api, diverging, **batch(21, 1)).status_code == 409

        overfitting = outside(api)
        evals = [
            {"step": 10 * i, "train_loss": 1.0 / i, "test_loss": 0.5 + 0.05 * i}
            for i in range(1, 13)
        ]
        steps(api, overfitting, **batch(1, 120), evals=evals)
        assert [e["type"] for e in events_of(api, overfitting)] == ["overfit"]

        plateau = outside(api)
        evals = [
            {"step": i, "train_loss": 1.0 if i == 1 else 0.2, "test_loss": 0.3}
            for i in range(1, 13)
        ]
        steps(api, plateau, **batch(1, 12), evals=evals)
        [chime] = events_of(api, plateau)
        assert chime["type"] == "chime" and "settled" in chime["reason"]


def test_a_shared_server_refuses_ingest_without_the_token(serve):
    token = "t0ken-for-the-presenter"
    with serve(presenter_token=token) as api:
        c = api.client
        refused = c.post("/api/runs/external", json={"layers": LAYERS})
        assert refused.status_code == 403
        ok = c.post(
            "/api/runs/external", json={"layers": LAYERS}, headers={"x-backbeat-token": token}
        )
        run_id = ok.json()["id"]
        assert c.post(f"/api/runs/{run_id}/steps", json=batch(1, 2)).status_code == 403
        with c.websocket_connect(f"/ws/ingest/{run_id}") as ws:
            closed = ws.receive()
        assert closed["type"] == "websocket.close" and closed["code"] == 4003
        with c.websocket_connect(f"/ws/ingest/{run_id}?token={token}") as ws:
            assert ws.receive_json() == {"type": "state", "state": "running"}
            ws.send_json({"type": "steps", **batch(1, 2)})
            assert ws.receive_json()["accepted"] == 2


def test_ingest_socket_reports_errors_and_pushes_the_presenters_controls(serve):
    with serve() as api:
        run_id = outside(api)
        with api.client.websocket_connect(f"/ws/ingest/{run_id}") as ws:
            assert ws.receive_json()["state"] == "running"
            ws.send_json({"type": "steps", "step": [1], "loss": [1.0], "grad_norm": [[1.0]]})
            error = ws.receive_json()
            assert (
                error["type"] == "error" and "nothing of this batch was stored" in error["detail"]
            )
            ws.send_text("not json")
            assert ws.receive_json()["type"] == "error"
            assert api.control(run_id, "tempo", steps_per_second=5).status_code == 409
            assert api.control(run_id, "pause").json()["state"] == "paused"
            assert ws.receive_json() == {"type": "state", "state": "paused"}
            api.control(run_id, "stop")
            assert ws.receive_json() == {"type": "state", "state": "stopped"}
        assert api.run(run_id)["state"] == "stopped"


def test_limits_on_outside_runs(serve):
    with serve() as api:
        too_many_layers = {"layers": [f"l{i}" for i in range(65)]}
        assert api.client.post("/api/runs/external", json=too_many_layers).status_code == 422
        ids = [outside(api) for _ in range(8)]
        r = api.client.post("/api/runs/external", json={"layers": LAYERS})
        assert r.status_code == 429 and "8 outside runs" in r.text
        handle = api.client.app.state.manager.get(ids[0]).handle
        ingest._rates[handle] = RateLimit(rate=1e-6, burst=2)  # the stated rate, without a clock
        codes = [steps(api, ids[0], step=[], loss=[]).status_code for _ in range(3)]
        assert codes == [200, 200, 429]


def test_a_closed_ingest_socket_interrupts_the_run_after_the_grace(serve, wait_until):
    with serve() as api:
        run_id = outside(api)
        with api.client.websocket_connect(f"/ws/ingest/{run_id}") as ws:
            ws.receive_json()
        handle = api.client.app.state.manager.get(run_id).handle
        wait_until(lambda: handle.sockets == 0, 10, "the server to see the socket close")
        assert handle.alive  # a reconnect may still come
        handle.last_heard -= 11  # the grace has passed
        wait_until(lambda: not handle.alive, 10, "the run to be interrupted")
        assert api.run(run_id)["state"] == "interrupted"


def test_the_outside_handle_fulfils_the_run_handle_contract():
    from app.live.external import ExternalRun
    from app.live.handle import CONTROLS, ControlError, RunHandle, control
    from app.live.ingest import OutsideRunSpec
    from app.live.states import RunState

    handle = ExternalRun("r", OutsideRunSpec(layers=LAYERS))  # not started
    assert isinstance(handle, RunHandle)
    assert handle.state is RunState.RUNNING and handle.alive
    assert handle.controls == {"pause", "resume", "stop"} <= CONTROLS
    for action in ("step", "tempo", "set"):
        with pytest.raises(ControlError, match="does not support it"):
            control(handle, action)
    with pytest.raises(ControlError, match="its own script"):
        handle.model()


def test_a_retried_create_with_the_same_key_gets_the_same_run(serve):
    """The client retries a create whose answer a timeout lost: one run, not two."""
    with serve() as api:
        first = outside(api, client_key="retry-key-0001")
        assert outside(api, client_key="retry-key-0001") == first
        assert outside(api, client_key="another-key-02") != first
        assert len(api.client.get("/api/runs").json()) == 2
        assert "client_key" not in api.run(first)["config"]  # the key is not the run's config
        api.client.post(f"/api/runs/{first}/control", json={"action": "stop"})
        assert outside(api, client_key="retry-key-0001") != first  # an ended run is not reused
        bad = api.client.post("/api/runs/external", json={"layers": LAYERS, "client_key": "<x>"})
        assert bad.status_code == 422
