"""An outside run: steps come from the user's own training script, not from our engine.

It offers the same handle as a child-process run, so the manager, channel and store
treat it alike. The detectors run here, on the logged values: the crescendo and the
alarm on each step's loss, the chime, plateau and overfit on logged evaluations. The
presenter's pause and stop only change the state; the script learns of them in the
answer to its next batch (or at once over the ingest websocket) and acts on them.
"""

import math
import threading
import time

from app.engine import metrics
from app.engine.detectors import ConvergenceDetector, Evaluation
from app.live.handle import SUMMARY_KEYS, ControlError, Sink, end_event
from app.live.ingest import (
    IDLE_TIMEOUT,
    RECONNECT_GRACE,
    OutsideRunSpec,
    StepBatch,
    measured_steps,
    to_block,
)
from app.live.states import RunState

WATCH_INTERVAL = 1.0  # s between checks that the script is still there


def describe_outside(config: dict, layers: list[int]) -> dict:
    """An outside run's shape as hellos and listings report it (live or stored)."""
    name = config.get("name") or "outside run"
    params = config.get("config") or {}
    return {
        "config": {
            "source": "external",
            "dataset": name,
            "name": name,
            "optimizer": str(params.get("optimizer", "")),
            "learning_rate": params.get("learning_rate", params.get("lr", "")),
            "params": params,
        },
        "layers": layers,
        "layer_names": config.get("layers") or [],
        "features": [],
        "task": "classification",
        "n_classes": 0,
        "source": "external",
    }


def outside_sizes(spec: OutsideRunSpec) -> list[int]:
    """Units at each layer boundary for the diagram: as given, else one unit per layer."""
    return list(spec.sizes) if spec.sizes is not None else [1] * (len(spec.layers) + 1)


class OutsideShape:
    """An outside run's spec as the manager sees a RunConfig: sizes, description, record."""

    def __init__(self, spec: OutsideRunSpec) -> None:
        self.spec, self.layers = spec, outside_sizes(spec)

    @classmethod
    def from_dump(cls, config: dict) -> "OutsideShape":
        """Back from `model_dump()` (another process's record of the run)."""
        spec = {k: v for k, v in config.items() if k != "dataset"}  # added by model_dump
        return cls(OutsideRunSpec.model_validate(spec))

    def model_dump(self) -> dict:
        """What the store keeps as the run's config (`dataset` is what listings show)."""
        kept = self.spec.model_dump(exclude={"client_key"})
        return {**kept, "dataset": self.spec.name or "outside run"}

    def describe(self) -> dict:
        return describe_outside(self.model_dump(), self.layers)


class ExternalRun:
    """The handle of a run whose steps arrive through ingest; it trains nothing itself."""

    controls = frozenset({"pause", "resume", "stop"})
    steps_per_second = None  # an outside run keeps its own pace

    def __init__(self, run_id: str, spec: OutsideRunSpec) -> None:
        self.run_id, self.spec = run_id, spec
        self.sink: Sink | None = None
        self.width = len(spec.layers)
        self._state = RunState.RUNNING
        self._final: RunState | None = None
        self.summary: dict = {}
        self.current_step = self.current_epoch = 0
        self.last_step = -1
        self.last_heard = time.monotonic()
        self.sockets = 0  # ingest websockets open now
        self.socketed = False  # the script has used a websocket: a closed one is a warning
        self.crescendo = metrics.Crescendo()
        self.initial_loss: float | None = None
        self._losses = [0.0, 0]  # sum and count of finite batch losses since the last eval
        self.convergence: ConvergenceDetector | None = None  # its reference: the first eval
        self.overfit = metrics.OverfitDetector()
        self.held: dict = {}  # each echo column's last measured row, for unmeasured steps
        self._lock = threading.RLock()
        self._watcher = threading.Thread(target=self._watch, name=f"watch-{run_id}", daemon=True)

    @property
    def state(self) -> RunState:
        return self._final or self._state

    @property
    def alive(self) -> bool:
        return self._final is None

    def start(self, sink: Sink) -> None:
        self.sink = sink
        self._emit_state()
        self._watcher.start()

    # -- controls from the page (the script hears of them and acts) ----------------------
    def _change(self, action: str, wanted: RunState, to: RunState) -> None:
        with self._lock:
            if not self.alive or self._state != wanted:
                raise ControlError(f"cannot {action}: the run is {self.state}")
            self._state = to
            self._emit_state()

    def pause(self) -> None:
        self._change("pause", RunState.RUNNING, RunState.PAUSED)

    def resume(self) -> None:
        self._change("resume", RunState.PAUSED, RunState.RUNNING)

    def stop(self) -> None:
        with self._lock:
            if not self.alive:
                raise ControlError(f"cannot stop: the run is {self.state}")
            self._end(RunState.STOPPED, "stopped from the page")

    def step(self) -> dict:
        raise ControlError("cannot step: an outside run trains at its own pace")

    def set_tempo(self, steps_per_second: float | None) -> None:
        raise ControlError("cannot change the tempo: an outside run trains at its own pace")

    def set(self, changes: dict) -> dict:
        raise ControlError("cannot set: an outside run's knobs live in its own script")

    def model(self) -> dict:
        raise ControlError("an outside run keeps its weights in its own script")

    def halt(self, state: RunState = RunState.INTERRUPTED) -> None:
        with self._lock:
            if self.alive:
                self._end(state, "the server stopped" if state == "interrupted" else None)

    def join(self, timeout: float | None = None) -> None:
        if self._watcher.is_alive() and threading.current_thread() is not self._watcher:
            self._watcher.join(timeout)

    # -- ingest from the script ---------------------------------------------------------
    def heard(self) -> None:
        self.last_heard = time.monotonic()

    def attach(self) -> None:
        with self._lock:
            self.sockets += 1
            self.socketed = True
            self.heard()

    def detach(self) -> None:
        with self._lock:
            self.sockets -= 1
            self.heard()

    def patience(self) -> float:
        """s of silence allowed: short once the script's socket has closed, else the idle limit."""
        return RECONNECT_GRACE if self.socketed and not self.sockets else IDLE_TIMEOUT

    def ingest(self, batch: StepBatch) -> dict:
        """Take one batch; a bad one raises ValueError before anything is stored.

        Steps at or below the last one taken (a batch resent after a reconnect) are
        skipped and counted, not stored twice.
        """
        with self._lock:
            self.heard()
            if not self.alive:
                raise ControlError(f"the run is {self.state}")
            block = to_block(batch, self.width, time.time(), self.held, self.last_step)
            fresh = block["step"] > self.last_step
            skipped = int(len(fresh) - fresh.sum())
            block = {name: col[fresh] for name, col in block.items()}
            accepted = len(block["step"])
            alarm = self._sound(block) if accepted else None
            if alarm is not None:
                block = {name: col[: alarm[0] + 1] for name, col in block.items()}
                accepted = alarm[0] + 1
            if accepted:
                first = self.last_step
                self.last_step = self.current_step = int(block["step"][-1])
                self.current_epoch = int(block["epoch"][-1])
                self.sink.on_steps(self.run_id, block)
                self._measured(batch, first)
            self._extra(batch, alarm is not None)
            if alarm is not None:
                self.sink.on_event(
                    self.run_id, {"type": "alarm", "step": self.last_step, "reason": alarm[1]}
                )
                self._end(RunState.DIVERGED, alarm[1])
            else:
                for ev in batch.evals:
                    self._evaluate(ev.model_dump())
                if batch.end:
                    self._end(RunState(batch.end), None)
            return {"accepted": accepted, "skipped": skipped, "state": self.state}

    def _measured(self, batch: StepBatch, after: int) -> None:
        """Which of the stored steps had their echoes measured, when not all of them were."""
        steps = measured_steps(batch)
        if steps is not None:
            steps = [s for s in steps if after < s <= self.last_step]
            event = {"type": "measured", "step": self.last_step, "steps": steps}
            self.sink.on_event(self.run_id, event)

    def _extra(self, batch: StepBatch, diverged: bool) -> None:
        """The script's own scalars, stored as one event a batch (exported as columns)."""
        extra = batch.extra
        if extra is None or not extra.step or not extra.values:
            return
        keep = [not diverged or s <= self.last_step for s in extra.step]
        steps = [s for s, k in zip(extra.step, keep, strict=True) if k]
        if not steps:
            return
        values = {
            n: [v for v, k in zip(vs, keep, strict=True) if k] for n, vs in extra.values.items()
        }
        event = {"type": "extra", "step": steps[-1], "steps": steps, "values": values}
        self.sink.on_event(self.run_id, event)

    def _sound(self, block) -> tuple[int, str] | None:
        """Fill the crescendo column; the first diverging step (index, reason), if any."""
        cresc = block["crescendo"]
        for i, loss in enumerate(block["loss"].tolist()):
            if self.initial_loss is None and math.isfinite(loss):
                self.initial_loss = loss
            reason = metrics.diverged(loss, self.initial_loss)
            cresc[i] = self.crescendo.update(loss)
            if math.isfinite(loss):
                self._losses[0] += loss
                self._losses[1] += 1
            if reason:
                return i, reason
        return None

    def _evaluate(self, ev: dict) -> None:
        train_loss, test_loss = ev["train_loss"], ev["test_loss"]
        total, count = self._losses
        if train_loss is None and count:  # the mean batch loss since the previous eval
            train_loss = ev["train_loss"] = total / count
        self._losses = [0.0, 0]
        event = {"type": "eval", **ev, "grid": None, "confusion": None, "predictions": None}
        self.sink.on_event(self.run_id, event)
        self.summary.update({k: ev.get(k) for k in SUMMARY_KEYS})
        if train_loss is None or test_loss is None:
            return
        step = ev["step"]
        if self.convergence is None:  # no class prior is known: the first train loss is the bar
            self.convergence = ConvergenceDetector(train_loss)
        fields = ("train_accuracy", "test_accuracy", "test_entropy")
        reason = self.convergence.observe(
            Evaluation(step, train_loss, test_loss, **{k: ev.get(k) for k in fields})
        )
        if reason:
            self.sink.on_event(self.run_id, {"type": "chime", "step": step, "reason": reason})
        if self.overfit.observe(train_loss, test_loss):
            overfit = {"type": "overfit", "step": step, "train_loss": train_loss}
            self.sink.on_event(self.run_id, {**overfit, "test_loss": test_loss})

    # -- endings ------------------------------------------------------------------------
    def _watch(self) -> None:
        """A script that stops sending (killed, network gone) ends its run as interrupted."""
        while self.alive:
            time.sleep(WATCH_INTERVAL)
            patience = self.patience()
            if time.monotonic() - self.last_heard > patience:
                self.vanished(f"no word from the script for {patience:g} s")

    def vanished(self, reason: str) -> None:
        with self._lock:
            if self.alive:
                self._end(RunState.INTERRUPTED, reason)

    def _emit_state(self) -> None:
        event = {"type": "state", "state": str(self._state), "step": self.current_step}
        self.sink.on_event(self.run_id, {**event, "steps_per_second": None})

    def _end(self, state: RunState, reason: str | None) -> None:
        self._final = state
        self.summary.update(state=str(state), step=self.current_step, reason=reason)
        self.sink.on_event(self.run_id, end_event(state, self.current_step, dict(self.summary)))
