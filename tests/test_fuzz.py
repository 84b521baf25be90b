"""Property-based fuzzing (issue 6): configs, controls and websocket messages never make a 5xx
or a crash, and every rejection says what was wrong."""

import json
import time
from urllib.parse import quote

import anyio
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.websockets import WebSocketDisconnect

from app.engine.config import RunConfig
from app.engine.datasets import DATASETS, FEATURES
from app.web.server import create_app
from app.web.settings import Settings

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL_RUN = dict(dataset="circle", n_samples=100, hidden=[4], max_steps=10_000_000)
ACTIONS = ("pause", "resume", "step", "stop", "tempo")
CLOSE_CODES = {1008, 1009}  # what a client's messages alone may earn it (docs/protocol.md)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)


def nested(inner):
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


anything = st.recursive(scalars, nested, max_leaves=10)
PLAUSIBLE = {
    "dataset": st.sampled_from([*DATASETS, "Spiral", ""]),
    "n_samples": st.integers(0, 6000),
    "noise": st.floats(-0.1, 0.6),
    "train_ratio": st.floats(0.0, 1.0),
    "features": st.lists(st.sampled_from([*FEATURES, "x3"]), max_size=8),
    "hidden": st.lists(st.integers(-1, 300), max_size=10),
    "activation": st.sampled_from(["relu", "tanh", "sigmoid", "linear", "gelu"]),
    "optimizer": st.sampled_from(["sgd", "momentum", "adam", "lbfgs"]),
    "learning_rate": st.floats(0, 20),
    "batch_size": st.integers(0, 600),
    "regularization": st.sampled_from(["none", "l1", "l2", "l3"]),
    "regularization_rate": st.floats(-1, 11),
    "seed": st.integers(-1, 2**31),
    "max_steps": st.integers(0, 20_000_000),
    "steps_per_second": st.none() | st.floats(0, 20_000),
    "start_paused": st.booleans(),
    "stop_at_convergence": st.booleans(),
    "table": st.none()  # the server replaces it; a forged one must not crash a run
    | st.fixed_dictionaries(
        {
            "hash": st.sampled_from(["0" * 64, "nothex"]),
            "kind": st.sampled_from(["csv", "drawn", "x"]),
            "task": st.sampled_from(["classification", "regression", "ranking"]),
            "n_classes": st.integers(-1, 20),
            "inputs": st.lists(st.text(max_size=5), max_size=3),
            "rows": st.integers(-1, 100),
        }
    ),
}
assert set(PLAUSIBLE) == set(RunConfig.model_fields)
configs = st.one_of(
    st.fixed_dictionaries({}, optional=PLAUSIBLE),  # mostly in range: many are accepted
    st.fixed_dictionaries(
        {},
        optional={
            **{name: strategy | anything for name, strategy in PLAUSIBLE.items()},
            "unknown_field": anything,
        },
    ),
)


def strict_json(text: str):
    """Parse as a browser would: NaN and Infinity are not JSON."""

    def refuse(token):
        raise AssertionError(f"{token} in a response")

    return json.loads(text, parse_constant=refuse)


def post_json(client: TestClient, path: str, body) -> "object":
    content = json.dumps(body).encode()  # NaN/Infinity go out as such, as a hostile client's would
    return client.post(path, content=content, headers={"content-type": "application/json"})


def assert_explained_422(answer: dict, body) -> None:
    assert answer["detail"], answer
    for error in answer["detail"]:
        assert isinstance(error["msg"], str) and error["msg"], error
        assert error["loc"][0] == "body", error
        if isinstance(body, dict):
            assert isinstance(error["loc"][1], str), error  # names the field


def test_run_configs_never_5xx_and_every_422_names_a_field(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, max_concurrent_runs=2))
    with TestClient(app, raise_server_exceptions=False) as client:

        @FUZZ
        @given(config=configs)
        def check(config):
            r = post_json(client, "/api/runs", config)
            assert r.status_code < 500, (config, r.text)
            answer = strict_json(r.text)
            if r.status_code == 201:
                assert client.delete(f"/api/runs/{answer['id']}").status_code == 204
            elif r.status_code == 422:
                assert_explained_422(answer, config)
            else:
                assert r.status_code == 429 and "runs are already training" in answer["detail"]

        check()


def test_config_bodies_of_any_shape_are_explained(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:

        @FUZZ
        @given(body=anything.filter(lambda b: not isinstance(b, dict)))
        def check(body):
            r = post_json(client, "/api/runs", body)
            assert r.status_code == 422, (body, r.text)
            assert_explained_422(strict_json(r.text), body)

        check()


tempos = st.none() | st.floats(0.0, 12_000)
sensible_controls = st.fixed_dictionaries(
    {"action": st.sampled_from(ACTIONS)}, optional={"steps_per_second": tempos}
)
controls = st.one_of(
    sensible_controls,
    sensible_controls,
    st.fixed_dictionaries(
        {},
        optional={
            "action": st.sampled_from(ACTIONS) | anything,
            "steps_per_second": tempos | anything,
            "extra": anything,
        },
    ),
    anything,
)
run_ids = st.sampled_from(["live", "ended"]) | st.text(min_size=1, max_size=30).filter(
    lambda s: "/" not in s and s not in (".", "..", "live", "ended")
)


class Runs:
    """A live (paused) run and an ended one to aim controls at; the live one is kept paused."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.ended = self.create(max_steps=5, steps_per_second=None)
        deadline = time.monotonic() + 10
        while self.client.get(f"/api/runs/{self.ended}").json()["state"] != "finished":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        self.live = self.create(start_paused=True)

    def create(self, **config) -> str:
        r = self.client.post("/api/runs", json={**SMALL_RUN, **config})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def keep_paused(self) -> None:
        """After a fuzzed control: a running run is paused again, an ended one replaced."""
        run = self.client.app.state.manager.get(self.live)
        if run.handle.state == "running":
            self.client.post(f"/api/runs/{self.live}/control", json={"action": "pause"})
        elif not run.handle.alive:
            assert self.client.delete(f"/api/runs/{self.live}").status_code == 204
            self.live = self.create(start_paused=True)


def test_controls_never_5xx_and_every_refusal_has_a_detail(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, max_concurrent_runs=2))
    with TestClient(app, raise_server_exceptions=False) as client:
        runs = Runs(client)

        @FUZZ
        @given(target=run_ids, body=controls)
        def check(target, body):
            run_id = {"live": runs.live, "ended": runs.ended}.get(target, target)
            r = post_json(client, f"/api/runs/{quote(run_id, safe='')}/control", body)
            answer = strict_json(r.text)
            assert r.status_code in (200, 404, 409, 422), (target, body, r.text)
            if r.status_code == 200:
                assert answer["id"] == run_id and answer["state"]
            elif r.status_code == 422:
                assert_explained_422(answer, body)
            else:
                assert isinstance(answer["detail"], str) and answer["detail"]
                if r.status_code == 404:
                    assert target not in ("live", "ended")
            runs.keep_paused()

        check()


# -- websocket messages ----------------------------------------------------------------------

json_messages = st.recursive(scalars, nested, max_leaves=20).map(json.dumps)
typed = st.fixed_dictionaries(
    {"type": st.sampled_from(["control", "pong", "ping", "hello", "frame"]) | anything},
    optional={"action": st.sampled_from(ACTIONS) | anything, "steps_per_second": anything},
).map(lambda v: json.dumps(v))
sensible = sensible_controls.map(lambda v: json.dumps({"type": "control", **v}))
messages = st.one_of(
    sensible,
    sensible,
    typed,
    json_messages,
    st.text(max_size=200),
    st.text(min_size=4000, max_size=4200),
    st.builds(lambda n: "[" * n + "]" * n, st.integers(900, 2040)),
    st.binary(max_size=300),
)


def receive(ws, timeout: float = 10.0) -> dict:
    async def get():
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    message = ws.portal.call(get)
    ws._raise_on_close(message)
    return strict_json(message["text"])


def replies_until(ws, barrier: str) -> list[dict]:
    """Everything answered to the client's messages up to the barrier's own error."""
    answers = []
    while True:
        message = receive(ws)
        if message["type"] in ("ack", "error"):
            if message.get("detail") == f"unknown message type {barrier!r}":
                return answers
            answers.append(message)


def expected_replies(sent: list[str | bytes]) -> int:
    count = 0
    for message in sent:
        try:
            parsed = json.loads(message) if isinstance(message, str) else None
        except (ValueError, RecursionError):
            parsed = None
        silent = isinstance(parsed, dict) and parsed.get("type") in ("pong", "ping")
        count += not silent
    return count


def test_websocket_messages_get_answers_or_documented_closes(tmp_path):
    settings_ = Settings(data_dir=tmp_path, message_rate=10_000.0, max_concurrent_runs=2)
    app = create_app(settings_)
    with TestClient(app, raise_server_exceptions=False) as client:
        runs = Runs(client)
        session = {"ws": None, "exit": None}

        def socket():
            if session["ws"] is None:
                cm = client.websocket_connect(f"/ws/runs/{runs.live}")
                session["ws"], session["exit"] = cm.__enter__(), cm.__exit__
                assert receive(session["ws"])["type"] == "hello"
            return session["ws"]

        def drop():
            session["exit"](None, None, None)
            session["ws"] = None

        @FUZZ
        @given(sent=st.lists(messages, min_size=1, max_size=4))
        def check(sent):
            ws = socket()
            barrier = f"sync-{time.monotonic_ns()}"
            try:
                for message in sent:
                    if isinstance(message, bytes):
                        ws.send_bytes(message)
                    else:
                        ws.send_text(message)
                ws.send_text(json.dumps({"type": barrier}))
                answers = replies_until(ws, barrier)
            except WebSocketDisconnect as closed:
                assert closed.code in CLOSE_CODES, (sent, closed.code, closed.reason)
                if closed.code == 1009:
                    assert max(len(m if isinstance(m, bytes) else m.encode()) for m in sent) > 4096
                drop()
            else:
                assert len(answers) == expected_replies(sent), (sent, answers)
                for answer in answers:
                    assert answer["type"] == "ack" or answer["detail"], answer
            old = runs.live
            runs.keep_paused()
            if runs.live != old and session["ws"] is not None:
                drop()

        try:
            check()
        finally:  # an open test session would hold up the client's shutdown
            if session["ws"] is not None:
                drop()
        # the server side stays healthy for everyone else
        assert client.get("/api/health").json()["status"] == "ok"
        deadline = time.monotonic() + 5
        while app.state.limits.open:
            assert time.monotonic() < deadline, app.state.limits.open
            time.sleep(0.01)
        with client.websocket_connect(f"/ws/runs/{runs.live}") as ws:
            assert receive(ws)["type"] == "hello"
            ws.send_text(json.dumps({"type": "control", "action": "step"}))
            answer = next(m for m in iter(lambda: receive(ws), None) if m["type"] == "ack")
            assert answer["metrics"]["step"] >= 1


@pytest.mark.parametrize("message", ["[" * 4000, "{" * 2000, '{"type": ' * 400])
def test_pathological_json_is_answered_not_fatal(tmp_path, message):
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        run_id = client.post("/api/runs", json={**SMALL_RUN, "start_paused": True}).json()["id"]
        with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
            assert receive(ws)["type"] == "hello"
            ws.send_text(message)
            ws.send_bytes(b"\x00\xff")
            ws.send_text('{"type": "sync"}')
            assert replies_until(ws, "sync") == [
                {"type": "error", "detail": "messages must be JSON objects"},
                {"type": "error", "detail": "messages must be JSON text, not binary"},
            ]
