"""The training thread: pause / step / resume / tempo / stop, events, and flat memory.

No sleeps: every wait is on a condition with a deadline.
"""

import threading
import time
import tracemalloc

import numpy as np
import pytest

from app.engine.config import RunConfig
from app.engine.trainer import Trainer
from app.live.handles import _PipeSink
from app.live.runner import HANDOFF_INTERVAL, ControlError, Runner

DEADLINE = 20.0  # s: generous, only reached when something is broken


class RecordingSink:
    """Keeps every block and event the runner hands over; tests wait on what arrives."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep  # False: count steps, keep only state and end events
        self.blocks: list[dict] = []
        self.events: list[dict] = []
        self.n_steps = 0
        self.changed = threading.Condition()

    def on_steps(self, run_id: str, block: dict) -> None:
        with self.changed:
            if self.keep:
                self.blocks.append(block)
            self.n_steps += len(block["step"])
            self.changed.notify_all()

    def on_event(self, run_id: str, event: dict) -> None:
        with self.changed:
            if self.keep or event["type"] in ("state", "end"):
                self.events.append(event)
            self.changed.notify_all()

    def wait_for(self, predicate, timeout: float = DEADLINE):
        with self.changed:
            result = self.changed.wait_for(predicate, timeout)
        assert result, "condition not reached before the deadline"
        return result

    def wait_event(self, kind: str, **match) -> dict:
        def found():
            return next(
                (
                    e
                    for e in self.events
                    if e["type"] == kind and all(e.get(k) == v for k, v in match.items())
                ),
                None,
            )

        return self.wait_for(found)

    def of_type(self, kind: str) -> list[dict]:
        with self.changed:
            return [e for e in self.events if e["type"] == kind]

    def column(self, name: str) -> np.ndarray:
        with self.changed:
            return np.concatenate([b[name] for b in self.blocks])


def start(sink=None, paused=False, tempo=None, **overrides) -> tuple[Runner, RecordingSink]:
    base = {"max_steps": 10_000_000, "steps_per_second": tempo, "stop_at_convergence": False}
    config = RunConfig(**{**base, **overrides})
    sink = sink or RecordingSink()
    runner = Runner("r1", Trainer(config), sink, tempo, start_paused=paused)
    runner.start()
    return runner, sink


@pytest.fixture
def cleanup():
    runners = []
    yield runners.append
    for runner in runners:
        if runner.alive:
            runner.stop()


def test_single_step_on_a_paused_run_advances_exactly_one_step(cleanup):
    runner, sink = start(paused=True)
    cleanup(runner)
    sink.wait_event("state", state="paused")
    assert runner.state == "paused" and runner.trainer.step == 0
    for expected in (1, 2, 3):
        row = runner.step()
        assert row["step"] == expected == runner.trainer.step
        assert row["loss"] > 0 and 0 <= row["accuracy"] <= 1 and 0 <= row["entropy"] <= 1
        assert len(row["grad_norm"]) == len(row["act_rms"]) == 3
    assert list(sink.column("step")) == [1, 2, 3]  # each step handed to the sink once
    assert runner.state == "paused"


def test_pause_then_resume(cleanup):
    runner, sink = start(tempo=500.0)
    cleanup(runner)
    sink.wait_for(lambda: sink.n_steps >= 20)
    runner.pause()
    paused = sink.wait_event("state", state="paused")
    assert runner.state == "paused"
    # nothing ran after the pause was acknowledged: the next single step is the very next one
    assert runner.step()["step"] == paused["step"] + 1
    runner.resume()
    sink.wait_event("state", state="running", step=paused["step"] + 1)
    sink.wait_for(lambda: runner.trainer.step >= paused["step"] + 20)
    assert runner.state == "running"
    states = [e["state"] for e in sink.of_type("state")]
    assert states == ["running", "paused", "running"]


def pace(sink: RecordingSink, after: int, upto: int) -> float:
    """Steps/s from the first step after a tempo change (it runs at once) to step `upto`."""
    steps, t = sink.column("step"), sink.column("t")
    window = t[(steps > after) & (steps <= upto)]
    return (len(window) - 1) / (window[-1] - window[0])


def test_tempo_change_mid_run_sets_the_pace_of_the_steps(cleanup):
    runner, sink = start(tempo=0.1)  # one step, then ten seconds to the next
    cleanup(runner)
    sink.wait_for(lambda: runner.trainer.step >= 1)
    runner.set_tempo(200.0)
    fast = sink.wait_event("state", steps_per_second=200.0)["step"]
    sink.wait_for(lambda: sink.n_steps >= fast + 60)  # not within ten seconds at 0.1/s
    runner.set_tempo(50.0)
    slow = sink.wait_event("state", steps_per_second=50.0)["step"]
    sink.wait_for(lambda: sink.n_steps >= slow + 25)
    # Step k after a change is due k / tempo after the first, never earlier (a late step
    # is caught up, so the pace can lag on a busy machine but never run ahead): the upper
    # bounds are tight, the lower ones loose.
    assert 200 / 8 < pace(sink, fast, slow) <= 200 * 1.02
    assert 50 / 8 < pace(sink, slow, slow + 25) <= 50 * 1.02
    runner.set_tempo(None)  # unpaced
    sink.wait_event("state", steps_per_second=None)
    sink.wait_for(lambda: sink.n_steps >= slow + 2000)


def test_stop_ends_the_thread_with_end_last(cleanup):
    runner, sink = start(tempo=1000.0)
    cleanup(runner)
    sink.wait_for(lambda: sink.n_steps >= 10)
    runner.stop()
    assert not runner._thread.is_alive()
    assert runner.state == "stopped" and not runner.alive
    end = sink.events[-1]
    assert end["type"] == "end" and end["state"] == "stopped"
    assert end["step"] == runner.trainer.step == sink.column("step")[-1]
    assert len(sink.of_type("end")) == 1


@pytest.mark.parametrize("paused", [False, True])
def test_controls_that_make_no_sense_raise(cleanup, paused):
    runner, sink = start(paused=paused, tempo=100.0)
    cleanup(runner)
    if paused:
        with pytest.raises(ControlError, match="cannot pause: the run is paused"):
            runner.pause()
    else:
        with pytest.raises(ControlError, match="cannot resume: the run is running"):
            runner.resume()
        with pytest.raises(ControlError, match="cannot step: the run is running"):
            runner.step()
    runner.stop()
    for control in (
        runner.pause,
        runner.resume,
        runner.step,
        runner.stop,
        lambda: runner.set_tempo(4.0),
    ):
        with pytest.raises(ControlError, match="the run is stopped"):
            control()


def test_a_finished_run_ends_with_a_final_eval_then_end():
    runner, sink = start(max_steps=300, dataset="circle")
    sink.wait_event("end")
    runner.join(DEADLINE)
    assert runner.state == "finished" and runner.trainer.step == 300
    assert sink.events[-1]["type"] == "end" and sink.events[-2]["type"] == "eval"
    assert sink.events[-2]["step"] == 300
    assert list(sink.column("step")) == list(range(1, 301))
    with pytest.raises(ControlError, match="finished"):
        runner.resume()


@pytest.mark.parametrize(
    "overrides",
    [dict(dataset="spiral", activation="relu"), dict(dataset="plane", activation="tanh")],
    ids=["relu-spiral", "tanh-plane"],
)
def test_learning_rate_ten_diverges_with_exactly_one_alarm(overrides):
    runner, sink = start(learning_rate=10.0, **overrides)
    end = sink.wait_event("end")
    runner.join(DEADLINE)
    assert end["state"] == runner.state == "diverged"
    alarms = sink.of_type("alarm")
    assert len(alarms) == 1 and alarms[0]["reason"]
    assert sink.events[-1] is end and sink.events[-2] is alarms[0]
    assert end["step"] == alarms[0]["step"] == sink.column("step")[-1]


def test_convergence_chimes_exactly_once():
    runner, sink = start(dataset="gauss", max_steps=3000)
    sink.wait_event("end")
    chimes = sink.of_type("chime")
    assert len(chimes) == 1 and chimes[0]["reason"]
    assert chimes[0]["step"] < 500


OVERFIT = dict(
    dataset="circle",
    n_samples=50,
    noise=0.5,
    train_ratio=0.2,
    hidden=[32, 32],
    optimizer="adam",
    learning_rate=0.01,
    max_steps=500,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_small_noisy_train_set_and_a_big_net_overfit(seed):
    """10 training points, 50 % noise, 1,185 parameters: test loss climbs while train falls."""
    runner, sink = start(seed=seed, **OVERFIT)
    sink.wait_event("end")
    (warning,) = sink.of_type("overfit")
    assert warning["test_loss"] > warning["train_loss"]
    assert sink.of_type("eval")[-1]["test_loss"] > 2 * sink.of_type("eval")[-1]["train_loss"]


def test_a_clean_problem_does_not_warn_of_overfitting():
    runner, sink = start(dataset="gauss", max_steps=3000)
    sink.wait_event("end")
    assert sink.of_type("overfit") == []


def test_the_runner_replays_bit_identically():
    def record(seed):
        runner, sink = start(dataset="xor", optimizer="momentum", seed=seed, max_steps=2000)
        sink.wait_event("end")
        evals = [{k: v for k, v in e.items() if k != "grid"} for e in sink.of_type("eval")]
        others = [e for e in sink.events if e["type"] not in ("eval", "state")]
        return sink, evals, others

    (a, a_evals, a_events), (b, b_evals, b_events), (c, _, _) = map(record, (3, 3, 4))
    for name in a.blocks[0]:
        if name != "t":  # wall-clock time; block boundaries follow the clock too
            assert np.array_equal(a.column(name), b.column(name), equal_nan=True), name
    assert a_evals == b_evals and a_events == b_events
    assert not np.array_equal(a.column("loss"), c.column("loss"))


def test_a_long_unpaced_run_holds_constant_memory():
    """200,000 unpaced steps; allocations traced over the last 20,000 must not accumulate.

    Tracing slows numpy five-fold, so it starts at step 180,000; memory still held at the
    end, beyond what was held at 190,000, is what the run would grow by per step.
    """
    total, trace_from, mid = 200_000, 180_000, 190_000
    sink = RecordingSink(keep=False)
    marks: dict[str, int] = {}

    def watch():
        sink.wait_for(lambda: sink.n_steps >= trace_from, timeout=120)
        tracemalloc.start()
        sink.wait_for(lambda: sink.n_steps >= mid, timeout=120)
        marks["mid"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        runner, sink = start(sink=sink, max_steps=total)
        sink.wait_for(lambda: not runner.alive, timeout=180)
        runner.join(DEADLINE)
        watcher.join(DEADLINE)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert runner.state == "finished" and sink.n_steps == total
    grown = current - marks["mid"]
    assert grown < 64 * 1024, f"{grown:,} bytes more held after another {total - mid:,} steps"
    assert peak - marks["mid"] < 2 * 1024 * 1024


class BatchingSink(RecordingSink):
    """Holds what it is handed until `flush`, as the child's pipe sink does."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple] = []
        self.flushed_at: list[float] = []
        self.lock = threading.Lock()

    def on_steps(self, run_id: str, block: dict) -> None:
        with self.lock:
            self.pending.append((super().on_steps, block))

    def on_event(self, run_id: str, event: dict) -> None:
        with self.lock:
            self.pending.append((super().on_event, event))

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
            self.flushed_at.append(time.perf_counter())
        for deliver, item in pending:
            deliver("r1", item)


def test_a_batching_sink_is_flushed_before_each_wait_and_once_a_handoff_interval(cleanup):
    runner, sink = start(BatchingSink(), tempo=0.1)  # one step, then ten seconds to the next
    cleanup(runner)
    sink.wait_for(lambda: sink.n_steps >= 1)  # flushed before the wait, not ten seconds on
    runner.set_tempo(None)
    sink.wait_event("state", steps_per_second=None)
    began = len(sink.flushed_at)
    sink.wait_for(lambda: sink.n_steps >= 3000 and len(sink.of_type("eval")) >= 40)
    training = sink.flushed_at[began:]
    runner.pause()
    paused = sink.wait_event("state", state="paused")  # flushed before the paused wait
    assert paused["step"] == sink.column("step")[-1]  # with every step before it
    gaps = np.diff(training)  # an unpaced run evaluates every 50 steps; it flushes less often
    # (the sink stamps a flush after the runner's hand-off, whose own time varies: 10 %)
    assert len(gaps) >= 2 and gaps.min() >= 0.9 * HANDOFF_INTERVAL, gaps.min()
    assert list(sink.column("step")) == list(range(1, paused["step"] + 1))  # in order, once


def test_the_childs_pipe_sink_batches_steps_as_one_block_then_evals_and_sends_the_rest_at_once():
    class Pipe:
        def __init__(self) -> None:
            self.sent: list[tuple] = []

        def send(self, message: tuple) -> None:
            self.sent.append(message)

    def what(message: tuple) -> list[tuple]:
        return [(item[0], item[1]["step"].tolist() if item[0] == "steps" else item[1]["type"])
                for item in message[1]]  # fmt: skip

    pipe = Pipe()
    sink = _PipeSink(pipe, [4])
    config = RunConfig(dataset="circle", n_samples=100, hidden=[4], max_steps=10)
    sink.runner = Runner("r1", Trainer(config), sink)
    sink.on_steps("r1", {"step": np.array([1, 2])})
    sink.on_event("r1", {"type": "eval", "step": 2})
    sink.on_steps("r1", {"step": np.array([3])})
    assert pipe.sent == []  # held until the runner flushes
    sink.flush()
    assert what(pipe.sent[0]) == [("steps", [1, 2, 3]), ("event", "eval")]
    sink.flush()
    assert len(pipe.sent) == 1  # nothing new: no empty batch
    sink.on_steps("r1", {"step": np.array([4])})
    sink.on_event("r1", {"type": "chime", "step": 4})  # any other event goes at once
    assert what(pipe.sent[1]) == [("steps", [4]), ("event", "chime")]
    sink.on_steps("r1", {"step": np.array([5])})
    sink.reply(("reply", 7, True, "ok", ()))  # what a control did goes before its answer
    assert what(pipe.sent[2]) == [("steps", [5])] and pipe.sent[3][0] == "reply"
