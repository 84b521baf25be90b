"""Audience frames: a summary of the frame's steps above SUMMARY_ABOVE, every step on request."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect
from test_stream import HELD, receive, strict

from app.engine.steps import LAYER_COLUMNS, StepBuffer
from app.live.audience import STATS, SUMMARY_ABOVE, SUMMARY_COLUMNS, Frame, summarise
from app.live.wire import dumps

NUMPY = {"mean": np.mean, "min": np.min, "max": np.max, "last": lambda v, axis: v[-1]}


def _block(n: int, n_layers: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    buffer = StepBuffer(n_layers, capacity=n)
    for col in buffer.columns.values():
        col[...] = rng.random(col.shape) * 10
    buffer.columns["step"][:] = np.arange(1, n + 1)
    buffer.columns["epoch"][:] = np.arange(n) // 7
    buffer.n = n
    return buffer.take()


def _reduced(full: dict) -> dict:
    """A full frame's columns (as a client receives them) reduced by numpy, per layer."""
    cols = {**full["beats"], **full["echoes"], "crescendo": full["crescendo"]}
    out = {}
    for name in SUMMARY_COLUMNS:
        values = np.array(_nulls_as_nan(cols[name]), dtype=float)
        out[name] = [NUMPY[stat](values, axis=0) for stat in STATS]
    return out


def _nulls_as_nan(column: list) -> list:
    if column and isinstance(column[0], list):
        return [_nulls_as_nan(row) for row in column]
    return [np.nan if v is None else v for v in column]


def _assert_summary_of(summary_frame: dict, full: dict) -> None:
    steps = full["beats"]["step"]
    assert summary_frame["count"] == len(steps) > SUMMARY_ABOVE
    assert (summary_frame["first"], summary_frame["last"]) == (steps[0], steps[-1])
    assert "beats" not in summary_frame
    want = _reduced(full)
    assert set(summary_frame["summary"]) == set(SUMMARY_COLUMNS)
    for name in SUMMARY_COLUMNS:
        assert len(summary_frame["summary"][name]) == len(STATS)  # [mean, min, max, last]
        for k, stat in enumerate(STATS):
            got = np.array(summary_frame["summary"][name][k], dtype=float)
            # the summary reduces the float64 steps, the client's full frame is float32: one ulp
            rel = 0 if stat in ("min", "max", "last") or name in ("t", "epoch") else 1e-6
            np.testing.assert_allclose(got, want[name][k], rtol=rel, err_msg=f"{stat} {name}")


def test_a_summary_equals_the_full_frame_reduced_the_same_way():
    block = _block(SUMMARY_ABOVE + 40)
    frame = Frame(block)
    full, audience = strict(dumps(frame.message("full"))), strict(dumps(frame.message("audience")))
    _assert_summary_of(audience, full)
    for name in LAYER_COLUMNS:  # each statistic per layer, in layer order
        assert [len(v) for v in audience["summary"][name]] == [3] * len(STATS)


def test_a_frame_the_ear_can_follow_goes_to_the_audience_in_full():
    frame = Frame(_block(SUMMARY_ABOVE))
    assert dumps(frame.message("audience")) == dumps(frame.message("full"))
    assert "beats" in frame.message("audience")


def test_non_finite_steps_make_their_column_null_and_the_json_valid():
    block = _block(40)
    block["loss"][5] = np.nan
    block["grad_norm"][7, 1] = np.inf
    block["entropy"][-1] = np.nan
    message = strict(dumps(Frame(block).message("audience")))["summary"]
    mean, lo, hi, last = (STATS.index(x) for x in ("mean", "min", "max", "last"))
    assert [message["loss"][k] for k in (mean, lo, hi)] == [None, None, None]
    assert message["grad_norm"][mean][1] is None and message["grad_norm"][mean][0] is not None
    assert message["entropy"][last] is None and message["accuracy"][mean] is not None
    assert message["loss"][last] == pytest.approx(float(np.float32(block["loss"][-1])))


def test_summary_is_a_small_fraction_of_the_full_frame():
    block = _block(475)  # what a 60 Hz frame of an unpaced run carries
    full, audience = (len(dumps(Frame(block).message(d))) for d in ("full", "audience"))
    assert audience <= 4096 and 20 * audience < full


def test_summarise_is_numpy_over_float64():
    block = _block(100, n_layers=2)
    s = summarise(block)
    mean, lo, hi = (STATS.index(x) for x in ("mean", "min", "max"))
    assert s["loss"][mean] == float(np.float32(block["loss"].mean()))
    assert s["epoch"][lo] == 0 and s["epoch"][hi] == 99 // 7
    want = block["grad_norm"].max(axis=0).astype(np.float32)  # metrics narrowed after reducing
    np.testing.assert_array_equal(s["grad_norm"][hi], want)


def _stream(ws) -> dict[int, dict]:
    """Every message up to `end`, by seq; pings answered, so a long read is not dropped."""
    by_seq = {}
    while True:
        message = strict(ws.receive_text())
        if message["type"] == "ping":
            ws.send_text('{"type": "pong"}')
            continue
        by_seq[message["seq"]] = message
        if message["type"] == "end":
            return by_seq


def test_live_audience_frames_are_the_full_frames_summarised(api):
    """Two viewers of one unpaced run: the audience one and a `?detail=full` script."""
    run_id = api.create(**{**HELD, "max_steps": 30_000})
    api.wait_state(run_id, "paused")
    path = f"/ws/runs/{run_id}"
    with (
        api.client.websocket_connect(path) as audience,
        api.client.websocket_connect(f"{path}?detail=full") as script,
    ):
        hellos = receive(audience), receive(script)
        assert [h["detail"] for h in hellos] == ["audience", "full"]
        # Messages (the step-0 eval, the `paused` state) may land between the handshakes; from
        # the later viewer's hello on, both must see the same.
        joined = hellos[1]["seq"]
        assert hellos[0]["seq"] <= joined
        api.control(run_id, "resume")
        with ThreadPoolExecutor(2) as pool:  # both read at once: neither falls silent
            seen, full = pool.map(_stream, (audience, script))
        seen = {seq: message for seq, message in seen.items() if seq > joined}

    assert set(seen) == set(full)  # the same sequence numbers: nothing dropped, nothing added
    summarised = 0
    for seq, message in seen.items():
        if message["type"] != "frame":
            assert message == full[seq]  # evals and events unchanged
        elif "summary" in message:
            _assert_summary_of(message, full[seq])
            summarised += 1
        else:
            assert message == full[seq] and len(message["beats"]["step"]) <= SUMMARY_ABOVE
    assert summarised >= 3  # an unpaced run outruns the ear
    steps = [s for m in full.values() if m["type"] == "frame" for s in m["beats"]["step"]]
    assert steps == list(range(1, 30_001))  # the script still gets every step


def test_an_unknown_detail_is_refused(api):
    run_id = api.create(**HELD)
    api.wait_state(run_id, "paused")
    with (
        pytest.raises(WebSocketDisconnect) as err,
        api.client.websocket_connect(f"/ws/runs/{run_id}?detail=everything") as ws,
    ):
        ws.receive_text()
    assert err.value.code == 1008
