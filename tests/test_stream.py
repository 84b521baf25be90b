"""The websocket: hello, frames, events, several viewers, late joiners, replay and eviction."""

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

from app.engine.steps import StepBuffer
from app.live import channel as hub
from app.live.channel import EVICTED, Channel, Viewer
from app.web.routes.stream import Session
from app.web.settings import Settings

HELD = {
    "dataset": "xor",
    "steps_per_second": None,
    "stop_at_convergence": False,
    "start_paused": True,
}
EVENTS = ("eval", "chime", "alarm", "overfit", "end")  # what a replay repeats


def _refuse(constant: str):
    raise ValueError(f"{constant} is not JSON")


def strict(text: str) -> dict:
    """Parse as a browser's JSON.parse would: NaN and Infinity are errors."""
    return json.loads(text, parse_constant=_refuse)


def receive(ws) -> dict:
    """The next protocol message (the server's keep-alive pings skipped)."""
    while (message := strict(ws.receive_text()))["type"] == "ping":
        pass
    return message


def receive_until(ws, kind: str, limit: int = 100_000) -> list[dict]:
    """Messages up to and including the first of type `kind`."""
    messages = []
    for _ in range(limit):
        messages.append(receive(ws))
        if messages[-1]["type"] == kind:
            return messages
    raise AssertionError(f"no {kind!r} within {limit} messages")


def frames_of(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"] == "frame"]


def columns(frames: list[dict]) -> dict[str, list]:
    """Frames' beats, echoes and crescendo joined into one column per metric."""
    out: dict[str, list] = {}
    for f in frames:
        for name, values in {**f["beats"], **f["echoes"], "crescendo": f["crescendo"]}.items():
            out.setdefault(name, []).extend(values)
    return out


def test_hello_then_frames_whose_arrays_match_the_architecture(api):
    config = {**HELD, "hidden": [6, 4], "max_steps": 400}
    run_id = api.create(**config)
    api.wait_state(run_id, "paused")
    with api.client.websocket_connect(f"/ws/runs/{run_id}?detail=full") as ws:
        hello = receive(ws)
        assert hello["type"] == "hello" and hello["replay"] is False
        run = hello["run"]
        assert run["id"] == run_id and run["state"] == "paused"
        assert run["layers"] == [2, 6, 4, 1]
        assert {k: run["config"][k] for k in config} == config
        assert set(hello["history"]) >= {"step", "loss", "accuracy", "grad_norm", "crescendo"}
        assert hello["history"]["step"] == []  # nothing trained yet
        assert api.control(run_id, "resume").status_code == 200
        messages = receive_until(ws, "end")

    assert [m["seq"] for m in messages] == list(
        range(hello["seq"] + 1, hello["seq"] + 1 + len(messages))
    )
    frames = frames_of(messages)
    for f in frames:
        n = len(f["beats"]["step"])
        assert n > 0
        assert set(f["beats"]) == {"step", "t", "epoch", "loss", "accuracy", "entropy", "act_rms"}
        assert set(f["echoes"]) == {"grad_norm", "update_ratio"}
        for values in [*f["beats"].values(), *f["echoes"].values(), f["crescendo"]]:
            assert len(values) == n
        for per_layer in (f["beats"]["act_rms"], *f["echoes"].values()):
            assert all(len(row) == 3 for row in per_layer)  # one number per weight layer
        assert all(0 <= v <= 1 for v in f["crescendo"] + f["beats"]["entropy"])
    assert columns(frames)["step"] == list(range(1, 401))  # every step, once, in order
    end = messages[-1]
    assert end["state"] == "finished" and end["step"] == 400
    last_eval = [m for m in messages if m["type"] == "eval"][-1]
    assert last_eval["step"] == 400
    assert end["summary"]["train_loss"] == last_eval["train_loss"]


def test_frames_come_at_most_about_sixty_a_second(api):
    run_id = api.create(**{**HELD, "max_steps": 10_000_000})
    with api.client.websocket_connect(f"/ws/runs/{run_id}?detail=full") as ws:
        receive(ws)
        api.control(run_id, "resume")
        arrivals: list[float] = []
        deadline = time.monotonic() + 60  # a loaded machine streams slower, never faster
        while len(arrivals) < 40 and time.monotonic() < deadline:
            if receive(ws)["type"] == "frame":
                arrivals.append(time.monotonic())
        api.control(run_id, "stop")
    assert len(arrivals) == 40  # it does stream while training flat out
    span = arrivals[-1] - arrivals[0]
    assert (len(arrivals) - 1) / span <= 66  # ≤ 60 Hz, with 10 % for timer jitter


def test_controls_through_the_api_show_up_on_the_stream(api):
    run_id = api.create(**{**HELD, "steps_per_second": 200.0})
    api.wait_state(run_id, "paused")
    with api.client.websocket_connect(f"/ws/runs/{run_id}?detail=full") as ws:
        receive(ws)
        seen: list[dict] = []

        def next_state() -> dict:
            seen.extend(receive_until(ws, "state"))
            return seen[-1]

        api.control(run_id, "resume")
        state = next_state()
        if state["state"] == "paused":  # the thread announced its start after we joined
            state = next_state()
        assert (state["state"], state["steps_per_second"]) == ("running", 200.0)

        api.control(run_id, "tempo", steps_per_second=500.0)
        state = next_state()
        assert (state["state"], state["steps_per_second"]) == ("running", 500.0)

        api.control(run_id, "pause")
        state = next_state()
        assert state["state"] == "paused"
        paused_at = state["step"]
        assert columns(frames_of(seen))["step"][-1] == paused_at  # frames reach the pause

        answer = api.control(run_id, "step").json()["metrics"]
        frame = receive_until(ws, "frame")[-1]
        assert frame["beats"]["step"] == [paused_at + 1]  # exactly one step
        assert frame["beats"]["loss"] == [answer["loss"]]
        assert [row for row in frame["echoes"]["grad_norm"]] == [answer["grad_norm"]]

        api.control(run_id, "stop")
        end = receive_until(ws, "end")[-1]
        assert (end["state"], end["step"]) == ("stopped", paused_at + 1)


def test_two_viewers_receive_the_same_bytes(api):
    run_id = api.create(**{**HELD, "max_steps": 3000})
    api.wait_state(run_id, "paused")
    url = f"/ws/runs/{run_id}?detail=full"
    with api.client.websocket_connect(url) as a, api.client.websocket_connect(url) as b:
        hellos = [strict(a.receive_text()), strict(b.receive_text())]
        api.control(run_id, "resume")
        texts = []
        for ws in (a, b):
            received = {}
            while True:
                text = ws.receive_text()
                message = strict(text)
                if message["type"] != "ping":
                    received[message["seq"]] = text
                if message["type"] == "end":
                    break
            texts.append(received)
    start = max(h["seq"] for h in hellos)
    after = [{seq: t for seq, t in got.items() if seq > start} for got in texts]
    assert len(after[0]) > 3
    assert after[0] == after[1]


def test_late_joiner_gets_hello_with_bounded_history(api, wait_until):
    run_id = api.create(dataset="xor", steps_per_second=None, max_steps=10_000_000)
    wait_until(lambda: api.run(run_id)["step"] > 3000, what="3,000 steps")
    with api.client.websocket_connect(f"/ws/runs/{run_id}?detail=full") as ws:
        hello = receive(ws)
        frame = receive_until(ws, "frame")[-1]
        api.control(run_id, "stop")
    history = hello["history"]
    steps = history["step"]
    assert 500 <= len(steps) <= 1000  # thinned, not truncated: it spans the run so far
    assert steps[0] <= 16 and steps[-1] >= 2000
    assert steps == sorted(set(steps))
    for name in ("loss", "accuracy", "entropy", "crescendo", "grad_norm"):
        assert len(history[name]) == len(steps)
    assert all(len(row) == 3 for row in history["grad_norm"])
    assert hello["run"]["state"] == "running" and hello["run"]["step"] >= steps[-1]
    assert hello["evals"] and hello["last_eval"]["grid"]["size"] == 64
    assert frame["beats"]["step"][0] > steps[-1]  # live frames carry on after the history


def test_nan_and_inf_never_reach_the_wire_and_divergence_alarms(api):
    # a regression run has no accuracy (NaN inside); lr 10 makes it blow up in a few steps
    run_id = api.create(**{**HELD, "dataset": "plane", "activation": "relu", "learning_rate": 10})
    api.wait_state(run_id, "paused")
    with api.client.websocket_connect(f"/ws/runs/{run_id}?detail=full") as ws:
        receive(ws)
        api.control(run_id, "resume")
        messages = receive_until(ws, "end")  # `receive` parses strictly
    kinds = [m["type"] for m in messages]
    assert kinds.index("alarm") < kinds.index("end")
    alarm, end = messages[kinds.index("alarm")], messages[-1]
    assert "loss" in alarm["reason"]
    assert end["state"] == "diverged" and end["step"] == alarm["step"]
    beats = columns(frames_of(messages))
    assert beats["accuracy"] and all(v is None for v in beats["accuracy"])  # NaN sent as null
    assert beats["loss"][-1] > 1000 * beats["loss"][0]
    assert api.run(run_id)["state"] == "diverged"
    for path in ("", "/metrics", "/model"):  # HTTP answers are strict JSON as well
        strict(api.client.get(f"/api/runs/{run_id}{path}").text)
    replay = f"/ws/runs/{run_id}?replay=1&steps_per_second=1000&detail=full"
    with api.client.websocket_connect(replay) as ws:
        assert receive_until(ws, "end")[-1]["state"] == "diverged"


def test_unknown_run_closes_4004(api):
    for url in ("/ws/runs/nosuchrun", "/ws/runs/nosuchrun?replay=1"):
        with api.client.websocket_connect(url) as ws, pytest.raises(WebSocketDisconnect) as err:
            ws.receive_text()
        assert err.value.code == 4004


def test_a_replay_scrubbed_to_a_step_starts_with_the_history_before_it(api):
    run_id = api.create(**{**HELD, "max_steps": 400, "start_paused": False})
    api.wait_state(run_id, "finished")
    with api.client.websocket_connect(f"/ws/runs/{run_id}?replay=1&start=200&detail=full") as ws:
        hello = receive(ws)
        first = receive_until(ws, "frame")[-1]
    assert hello["replay"] is True and hello["start"] == 200
    earlier = hello["history"]["step"]
    assert earlier and earlier[0] == 1 and earlier[-1] < 200
    assert hello["evals"] and all(e["step"] < 200 for e in hello["evals"])
    assert first["beats"]["step"][0] == 200


def _events(messages: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "seq"} for m in messages if m["type"] in EVENTS]


def test_replay_equals_the_live_run(api):
    # paced so that no frame carries two evals (the live stream sends the newest of a tick's)
    tempo, config = 500.0, {**HELD, "max_steps": 400, "noise": 0.3}
    run_id = api.create(**{**config, "steps_per_second": tempo})
    api.wait_state(run_id, "paused")
    with api.client.websocket_connect(f"/ws/runs/{run_id}?detail=full") as ws:
        hello = receive(ws)
        api.control(run_id, "resume")
        live = receive_until(ws, "end")
    first_eval = [hello["last_eval"]] if hello["last_eval"] else []  # step 0, before we joined

    url = f"/ws/runs/{run_id}?replay=1&steps_per_second={tempo}&detail=full"
    with api.client.websocket_connect(url) as ws:
        replay_hello = receive(ws)
        replay = receive_until(ws, "end")
    assert replay_hello["replay"] is True and replay_hello["run"]["layers"] == [2, 8, 8, 1]

    # a tick that carries two evals (a loaded machine) sends the older without its grid
    gridless = [[{k: v for k, v in e.items() if k != "grid"} for e in _events(m)]
                for m in (replay, first_eval + live)]  # fmt: skip
    assert gridless[0] == gridless[1]
    for a, b in zip(_events(replay), _events(first_eval + live), strict=True):
        assert a.get("grid") is None or b.get("grid") is None or a["grid"] == b["grid"]
    assert len(_events(live)) >= 400 // 25  # an eval every 25 steps, and the end
    got, want = columns(frames_of(replay)), columns(frames_of(live))
    assert set(got) == set(want)
    assert got["step"] == want["step"] == list(range(1, 401))
    assert got["epoch"] == want["epoch"]
    for name in set(want) - {"step", "epoch", "t"}:  # metrics travel at float32 precision both ways
        assert got[name] == want[name], name
    t = np.concatenate([f["beats"]["t"] for f in frames_of(replay)])
    assert np.allclose(np.diff(t), 1 / tempo, rtol=0, atol=1e-6)  # the replay's own clock


# -- eviction: a slow viewer is dropped, never waited for ------------------------------


def _run_channel(fast: Viewer, slow: Viewer, n_blocks: int) -> tuple[Channel, list[str]]:
    """Feed a channel from a thread, as training does; drain only the fast viewer."""

    async def main() -> tuple[Channel, list[str]]:
        loop = asyncio.get_running_loop()
        channel = Channel("r", 1, loop, dict)
        channel.viewers |= {fast, slow}
        pump = asyncio.create_task(channel.pump())
        received: list[str] = []

        def train() -> None:
            buffer = StepBuffer(1, capacity=1)
            for step in range(1, n_blocks + 1):
                buffer.columns["step"][0], buffer.n = step, 1
                channel.on_steps("r", buffer.take())
                time.sleep(0.02)  # past a frame interval: one message per block
            channel.on_event("r", {"type": "end", "state": "finished", "step": n_blocks})

        trainer = threading.Thread(target=train)
        trainer.start()
        while not received or json.loads(received[-1])["type"] != "end":
            received.append(await asyncio.wait_for(fast.take(), 5))
        trainer.join()
        await asyncio.wait_for(pump, 5)
        return channel, received

    return asyncio.run(main())


def test_a_viewer_whose_queue_overflows_is_evicted_and_the_others_keep_everything():
    fast, slow = Viewer(maxsize=4), Viewer(maxsize=4)
    channel, received = _run_channel(fast, slow, n_blocks=12)
    assert slow.evicted and not fast.evicted
    assert channel.evictions == 1 and channel.viewers == {fast}
    assert slow.queue.qsize() == 1 and slow.queue.get_nowait() is None  # the close signal
    messages = [json.loads(t) for t in received]
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    assert [s for m in messages[:-1] for s in m["beats"]["step"]] == list(range(1, 13))


class StuckSocket:
    """A websocket whose client answers pings but stops reading after the hello."""

    def __init__(self, settings: Settings) -> None:
        self.app = SimpleNamespace(state=SimpleNamespace(settings=settings))
        self.sent, self.closed = 0, None

    async def send_text(self, text: str) -> None:
        self.sent += 1
        if self.sent > 1:  # the hello goes out; every later send blocks for good
            await asyncio.Event().wait()

    async def receive(self) -> dict:
        await asyncio.sleep(0.15)
        return {"type": "websocket.receive", "text": '{"type": "pong"}'}

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def test_a_send_stuck_past_the_heartbeat_timeout_is_evicted():
    settings = Settings(heartbeat_interval=0.05, heartbeat_timeout=0.3)

    async def main() -> tuple[StuckSocket, float]:
        ws, viewer = StuckSocket(settings), Viewer()
        viewer.offer('{"type": "frame"}')  # far from overflowing: the hub would not evict
        start = time.monotonic()
        await asyncio.wait_for(Session(ws, presenter=False).hold("{}", viewer, None), 5)
        return ws, time.monotonic() - start

    ws, took = asyncio.run(main())
    assert ws.closed == (EVICTED, "viewer too slow: evicted")
    assert 0.3 <= took < 0.3 + 0.05 + 0.5


def test_nothing_is_serialised_without_an_audience(monkeypatch):
    serialised = []
    monkeypatch.setattr(hub, "dumps", lambda message: serialised.append(message) or "{}")

    async def main() -> Channel:
        channel = Channel("r", 1, asyncio.get_running_loop(), dict)
        channel._broadcast({"type": "frame"})  # nobody watching: only the seq moves on
        channel.viewers.add(Viewer())
        channel._broadcast({"type": "frame"})
        return channel

    channel = asyncio.run(main())
    assert channel.seq == 2 and serialised == [{"type": "frame", "seq": 2}]


def test_an_evicted_websocket_is_closed_with_4008(api, monkeypatch):
    # a one-message outbox overflows as soon as a tick carries a frame and an eval
    monkeypatch.setattr(hub.Viewer.__init__, "__defaults__", (1, "audience"))
    run_id = api.create(**{**HELD, "max_steps": 2000})
    api.wait_state(run_id, "paused")
    with api.client.websocket_connect(f"/ws/runs/{run_id}?detail=full") as ws:
        receive(ws)
        api.control(run_id, "resume")
        with pytest.raises(WebSocketDisconnect) as err:
            while True:
                receive(ws)
    assert err.value.code == EVICTED
    assert api.wait_state(run_id, "finished")["step"] == 2000  # training never noticed


def test_a_viewer_whose_oldest_message_waits_too_long_is_evicted():
    async def scenario():
        viewer = Viewer()
        assert viewer.offer("first")
        assert viewer.offer("second")
        assert await viewer.take() == "first"  # reading keeps a viewer in
        viewer.queued_at[0] -= hub.VIEWER_PATIENCE + 1  # "second" has now waited past the limit
        assert not viewer.offer("third")
        assert viewer.evicted and viewer.dropped.is_set()
        assert await viewer.take() is None  # the sender's cue to close with 4008

    asyncio.run(scenario())
