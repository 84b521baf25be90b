"""Uploaded and drawn sets over HTTP: upload, list, run, export, restart, refusals, roles."""

import json

import numpy as np
import pytest

from app.engine.tables import MAX_BYTES

TOKEN = "presenter-token-for-upload-tests"
QUICK = {"steps_per_second": None, "max_steps": 200}


def lecture_csv(n: int = 60) -> bytes:
    """Three numeric inputs, one text column, a text target: like a table from a lecture."""
    rng = np.random.default_rng(7)
    lines = ["height,weight,age,nickname,species"]
    for i in range(n):
        h, w, a = rng.normal(170, 10), rng.normal(70, 15), rng.integers(18, 80)
        lines.append(f"{h:.2f},{w:.2f},{a},n{i},{'tall' if h > 170 else 'short'}")
    return ("\n".join(lines) + "\n").encode()


def upload(api, data: bytes, headers: dict | None = None, **fields):
    files = {"file": ("lecture.csv", data, "text/csv")}
    return api.client.post("/api/datasets", files=files, data=fields, headers=headers or {})


def listed(api) -> dict:
    return {d["name"]: d for d in api.client.get("/api/datasets").json()}


def test_upload_lists_the_set_beside_the_built_ins(api):
    r = upload(api, lecture_csv(), target="species", task="classification")
    assert r.status_code == 201, r.text
    sets = listed(api)
    assert sets["spiral"]["source"] == "builtin"
    mine = sets["lecture"]  # named after the file
    assert mine["source"] == "uploaded" and mine["rows"] == 60
    assert mine["columns"] == ["height", "weight", "age", "species"]
    assert mine["inputs"] == ["height", "weight", "age"] and mine["ignored_columns"] == ["nickname"]
    assert mine["classes"] == ["short", "tall"] and mine["standardized"] is True
    assert "standardised" in mine["description"]


def test_json_rows_first_row_names_the_columns(api):
    rows = [["x1", "x2", "y"], [1, 2, 0.5], [3, 4, -0.25], [5, 6, 1.0], [7, 8, 0.0], [9, 1, 2]]
    r = api.client.post("/api/datasets", json={"name": "tiny", "rows": rows, "task": "regression"})
    assert r.status_code == 201, r.text
    assert r.json()["task"] == "regression" and r.json()["inputs"] == ["x1", "x2"]
    back = api.client.get("/api/datasets/tiny").json()["data"]
    assert back == [[float(c) if i else c for c in row] for i, row in enumerate(rows)]


def test_a_run_on_an_uploaded_set_behaves_like_any_run(api):
    upload(api, lecture_csv(), name="people", target="species")
    run_id = api.create(dataset="people", hidden=[5], train_ratio=0.7, **QUICK)
    run = api.wait_state(run_id, "finished", "converged", timeout=60)
    assert run["layers"] == [3, 5, 1] and run["features"] == ["height", "weight", "age"]
    assert run["config"]["table"]["inputs"] == ["height", "weight", "age"]
    data = api.client.get(f"/api/runs/{run_id}/data").json()
    assert (len(data["train"]["x"]), len(data["test"]["x"])) == (42, 18)  # the seeded 70 % split
    x = np.array(data["train"]["x"] + data["test"]["x"])
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-9)  # standardised
    again = api.create(dataset="people", hidden=[5], train_ratio=0.7, **QUICK)
    api.wait_state(again, "finished", "converged", timeout=60)
    assert api.client.get(f"/api/runs/{again}/data").json() == data
    evals = api.metrics(run_id)
    assert evals["beats"]["step"][-1] == 200
    csv = api.client.get(f"/api/runs/{run_id}/metrics?format=csv")
    assert csv.status_code == 200 and csv.text.startswith("step,")
    model = api.client.get(f"/api/runs/{run_id}/model").json()
    assert len(model["layers"][0]["weights"]) == 3


def test_more_than_two_inputs_get_a_confusion_matrix(serve):
    with serve() as api:
        upload(api, lecture_csv(), name="people", target="species")
        run_id = api.create(dataset="people", **QUICK)
        api.wait_state(run_id, "finished", "converged", timeout=60)
        with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
            hello = json.loads(ws.receive_text())
        last = hello["last_eval"]
        assert last["grid"] is None
        assert sum(map(sum, last["confusion"])) == 30 and len(last["confusion"]) == 2


def test_two_input_uploads_get_the_heatmap_over_their_standardised_range(api):
    rows = [["a", "b", "c"]] + [[i, (i * 7) % 11, i % 2] for i in range(30)]
    api.client.post("/api/datasets", json={"name": "flat", "rows": rows})
    run_id = api.create(dataset="flat", features=["x1", "x2", "x1*x2"], **QUICK)
    api.wait_state(run_id, "finished", "converged", timeout=60)
    with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        grid = json.loads(ws.receive_text())["last_eval"]["grid"]
    data = api.client.get(f"/api/runs/{run_id}/data").json()
    points = np.array(data["train"]["points"] + data["test"]["points"])
    assert grid["x"][0] < points[:, 0].min() and grid["x"][1] > points[:, 0].max()
    assert data["extent"] == [*grid["x"], *grid["y"]]


def test_csv_round_trips_through_upload_a_run_and_a_restart(serve, tmp_path):
    folder = tmp_path / "kept"
    with serve(folder) as api:
        upload(api, lecture_csv(), name="people", target="species")
        run_id = api.create(dataset="people", **QUICK)
        api.wait_state(run_id, "finished", "converged", timeout=60)
        before = {
            "data": api.client.get(f"/api/runs/{run_id}/data").json(),
            "metrics": api.metrics(run_id),
            "set": api.client.get("/api/datasets/people").json(),
        }
        # a name freed while a run still uses the rows: the run keeps them
        assert api.client.delete("/api/datasets/people").status_code == 204
    with serve(folder) as api:
        assert "people" not in listed(api)
        assert api.client.get(f"/api/runs/{run_id}/data").json() == before["data"]
        assert api.metrics(run_id) == before["metrics"]
        with api.client.websocket_connect(f"/ws/runs/{run_id}") as ws:
            hello = json.loads(ws.receive_text())
        assert (
            hello["run"]["layers"] == [3, 8, 8, 1] and hello["run"]["config"]["dataset"] == "people"
        )
        with api.client.websocket_connect(
            f"/ws/runs/{run_id}?replay=true&steps_per_second=1000"
        ) as ws:
            kinds = set()
            while "end" not in kinds:
                kinds.add(json.loads(ws.receive_text())["type"])
        assert {"hello", "frame", "end"} <= kinds
        # the same file again is the same set, by content
        again = upload(api, lecture_csv(), name="people", target="species").json()
        assert again["hash"] == before["set"]["hash"]
        assert api.client.get("/api/datasets/people").json()["data"] == before["set"]["data"]


def test_bad_uploads_get_messages_and_keep_what_is_stored(api):
    assert upload(api, lecture_csv(), name="keep", target="species").status_code == 201
    stored = api.client.get("/api/datasets").json()
    cases = [
        (b"", 422, "the file is empty"),
        (b"a,b,y\n1,2,0\n3,x,1\n5,6,0\n7,8,1\n", 422, "row 3, column 'b': 'x' is not a number"),
        (b"a,b,y\n1,2,0\n3,4,1\n5,,0\n7,8,1\n", 422, "row 4, column 'b': the value is missing"),
        (b"a,b,y\n1,2,0\n3,4,0\n5,6,0\n7,8,0\n", 422, "column 'y' has one class only"),
        ("a,y\n1,0\n2,1\n3,0\n4,\xe9\n".encode("latin-1"), 422, "row 5: byte 0xe9 is not UTF-8"),
        (b"a,y\n" + b"1,0\n" * 10_001, 422, "10,001 data rows; the limit is 10,000"),
        (",".join(f"c{i}" for i in range(65)).encode() + b"\n" + b"1," * 64 + b"0\n", 422,
         "65 columns; the limit is 64"),
        (b"a,y\n" + b"1,0\n" * (MAX_BYTES // 4 + 1), 413, "over 5 MiB"),
    ]  # fmt: skip
    for data, status, message in cases:
        r = upload(api, data, name="other")
        assert r.status_code == status, (message, r.text)
        assert message in r.json()["detail"], r.json()
    dup = upload(api, lecture_csv(30), name="keep", target="species")
    assert dup.status_code == 409 and "'keep' already exists" in dup.json()["detail"]
    dup_case = upload(api, lecture_csv(30), name="KEEP", target="species")
    assert dup_case.status_code == 409
    assert upload(api, lecture_csv(), name="spiral").status_code == 422  # a built-in's name
    r = upload(api, lecture_csv(), name="x", target="nope")
    assert "no column named 'nope'" in r.json()["detail"]
    assert api.client.get("/api/datasets").json() == stored


def test_far_too_big_a_body_is_refused_before_it_is_read(api):
    r = upload(api, b"a,y\n" + b"1,0\n" * (MAX_BYTES // 2))
    assert r.status_code == 413 and r.json()["detail"].startswith("the request body is over 6 MiB")
    # every other route keeps the server's 64 KiB
    r = api.client.post(
        "/api/runs", content=b" " * 70_000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "64 KiB" in r.json()["detail"]


def test_other_content_types_are_415(api):
    r = api.client.post("/api/datasets", content=b"a,b\n1,2", headers={"content-type": "text/csv"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]


def test_unknown_sets_and_deletes(api):
    r = api.client.post("/api/runs", json={"dataset": "never-uploaded"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "dataset"]
    assert api.client.delete("/api/datasets/never-uploaded").status_code == 404
    assert api.client.delete("/api/datasets/spiral").status_code == 409
    assert api.client.get("/api/datasets/never-uploaded").status_code == 404


def test_an_uploaded_sets_network_is_checked_against_its_size(api):
    rows = [[f"c{j}" for j in range(64)]] + [[i + j for j in range(63)] + [i % 2] for i in range(8)]
    api.client.post("/api/datasets", json={"name": "wide", "rows": rows})
    r = api.client.post("/api/runs", json={"dataset": "wide", "hidden": [256, 256, 256, 256]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "hidden"]


@pytest.mark.parametrize("method", ["post", "delete"])
def test_shared_server_refuses_viewer_uploads(serve, method):
    with serve(presenter_token=TOKEN) as api:
        presenter = {"x-backbeat-token": TOKEN}
        assert upload(api, lecture_csv(), headers=presenter, name="mine").status_code == 201
        if method == "post":
            r = upload(api, lecture_csv(), name="theirs")
        else:
            r = api.client.delete("/api/datasets/mine")
        assert r.status_code == 403 and "presenter" in r.json()["detail"]
        assert set(listed(api)) >= {"mine"} and "theirs" not in listed(api)


def test_drawn_sets_are_named_by_content_and_idempotent(api):
    rows = [["x1", "x2", "label"], [1, 1, 1], [-2, 3, 0], [4, -5, 1], [0.5, 0.5, 0]]
    first = api.client.post("/api/datasets", json={"rows": rows, "kind": "drawn"})
    assert first.status_code == 201 and first.json()["name"].startswith("drawn-")
    second = api.client.post("/api/datasets", json={"rows": rows, "kind": "drawn"})
    assert second.status_code == 200 and second.json()["name"] == first.json()["name"]
    bad = [["x1", "x2", "label"], [1, 1, 1], [9, 3, 0], [4, -5, 1], [0.5, 0.5, 0]]
    r = api.client.post("/api/datasets", json={"rows": bad, "kind": "drawn"})
    assert r.status_code == 422 and r.json()["detail"].startswith("row 3: drawn points")


def test_rows_are_kept_while_a_name_or_a_run_refers_to_them(serve):
    with serve() as api:
        digest = upload(api, lecture_csv(), name="people", target="species").json()["hash"]
        run_id = api.create(dataset="people", **QUICK)
        api.wait_state(run_id, "finished", "converged", timeout=60)
        tables = api.client.app.state.tables
        assert api.client.delete("/api/datasets/people").status_code == 204
        assert tables.by_hash(digest) is not None  # the run still needs them
        assert api.client.delete(f"/api/runs/{run_id}").status_code == 204
        assert tables.by_hash(digest) is None


def test_detectors_apply_to_uploaded_sets(serve):
    rows = [["a", "b", "y"]] + [[i, (i * 7) % 13, 3 * i + 5] for i in range(40)]
    with serve() as api:
        api.client.post("/api/datasets", json={"name": "line", "rows": rows, "task": "regression"})
        run_id = api.create(
            dataset="line", learning_rate=10, optimizer="sgd", activation="relu", **QUICK
        )
        run = api.wait_state(run_id, "diverged", "finished", timeout=60)
        assert run["state"] == "diverged"
        alarms = api.client.get(f"/api/runs/{run_id}").json()["summary"]
        assert alarms["state"] == "diverged" and alarms["reason"]
