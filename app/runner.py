"""The training loop in its own thread: start, pause, resume, single step, stop, live tempo.

It hands blocks of step records and events to a sink and knows nothing of servers.
"""

import logging
import threading
import time
from concurrent.futures import Future
from typing import Protocol

from app.engine import Trainer
from app.steps import StepBlock, block_row

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1 / 60  # s between step blocks handed to the sink (the wire's frame rate)
GRID_INTERVAL = 0.1  # s between decision grids when running unpaced
MAX_LAG = 0.25  # s behind the tempo before the schedule restarts instead of bursting
SUMMARY_KEYS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")  # from evals
LIVE_STATES = frozenset({"starting", "running", "paused"})
TERMINAL_STATES = frozenset({"finished", "stopped", "diverged", "failed", "interrupted"})


class Sink(Protocol):
    def on_steps(self, run_id: str, block: StepBlock) -> None: ...
    def on_event(self, run_id: str, event: dict) -> None: ...


class ControlError(RuntimeError):
    """A control that makes no sense in the run's current state."""


class Runner:
    """Owns one Trainer and the thread that drives it."""

    def __init__(
        self,
        run_id: str,
        trainer: Trainer,
        sink: Sink,
        steps_per_second: float | None = None,
        start_paused: bool = False,
    ) -> None:
        self.run_id, self.trainer, self.sink = run_id, trainer, sink
        self.steps_per_second = steps_per_second
        self._paused = start_paused
        self._stop = False
        self._stop_state = "stopped"
        self._pending: list[Future] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._final: str | None = None
        self._announced = "starting"
        self.summary: dict = {}
        self._thread = threading.Thread(target=self._loop, name=f"run-{run_id}", daemon=True)

    # -- controls (any thread) -------------------------------------------------
    @property
    def state(self) -> str:
        if self._final:
            return self._final
        return "paused" if self._paused else "running"

    @property
    def alive(self) -> bool:
        return self._final is None

    def start(self) -> None:
        self._thread.start()

    def pause(self) -> None:
        with self._lock:
            self._require(not self._paused, "pause")
            self._paused = True
        self._wake.set()

    def resume(self) -> None:
        with self._lock:
            self._require(self._paused, "resume")
            self._paused = False
        self._wake.set()

    def set_tempo(self, steps_per_second: float | None) -> None:
        with self._lock:
            self._require(True, "tempo")
            self.steps_per_second = steps_per_second
        self._wake.set()

    def step(self, timeout: float = 10.0) -> dict:
        """Advance a paused run by exactly one optimizer step; returns that step's metrics."""
        done: Future = Future()
        with self._lock:
            self._require(self._paused, "step")
            self._pending.append(done)
        self._wake.set()
        try:
            return done.result(timeout)
        except TimeoutError as exc:
            raise ControlError(f"the step did not finish within {timeout:g} s") from exc

    def stop(self, timeout: float | None = 5.0) -> None:
        with self._lock:
            self._require(True, "stop")
            self._stop = True
        self._wake.set()
        self.join(timeout)

    def halt(self, state: str = "interrupted") -> None:
        """Stop without state checks (server shutdown); the run ends as `state`."""
        self._stop_state, self._stop = state, True
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _require(self, ok: bool, action: str) -> None:
        if self._final or self._stop:
            raise ControlError(f"cannot {action}: the run is {self.state}")
        if not ok:
            raise ControlError(f"cannot {action}: the run is {self.state}")

    # -- the loop (training thread) ----------------------------------------------
    def _loop(self) -> None:
        tr = self.trainer
        final, reason = "finished", None
        self._last_flush = self._last_grid = time.perf_counter()
        next_due: float | None = None
        tempo = self.steps_per_second
        try:
            self._evaluate(with_grid=True)
            while True:
                if self._stop:
                    final = self._stop_state
                    break
                if tr.done:
                    break
                if self.steps_per_second != tempo:  # a new tempo is announced even while paused
                    tempo, next_due = self.steps_per_second, None
                    if self._announced != "starting":
                        self._emit_state()
                if self._paused:
                    if self._pending:
                        reason = self._single_step()
                        if reason:
                            final = "diverged"
                            break
                        continue
                    self._announce("paused")
                    self._wake.wait()
                    self._wake.clear()
                    next_due = None
                    continue
                self._announce("running")
                if tempo:
                    now = time.perf_counter()
                    if next_due is None or now - next_due > MAX_LAG:
                        next_due = now
                    if next_due > now:
                        self._flush()
                        if self._wake.wait(next_due - now):
                            self._wake.clear()
                        continue
                    next_due += 1.0 / tempo
                reason = tr.train_step()
                if reason:
                    final = "diverged"
                    break
                if tr.step % tr.eval_every == 0:
                    self._evaluate(with_grid=bool(tempo) or self._grid_due())
                if tr.buffer.full or time.perf_counter() - self._last_flush >= FLUSH_INTERVAL:
                    self._flush()
        except Exception as exc:  # a bug must end the run visibly, never kill the server
            log.exception("run %s failed", self.run_id)
            final, reason = "failed", f"{type(exc).__name__}: {exc}"
        self._finish(final, reason)

    def _single_step(self) -> str | None:
        tr = self.trainer
        done = self._pending.pop(0)
        try:
            reason = tr.train_step()
            block = tr.buffer.take()
            row = block_row(block, len(block["step"]) - 1)
            self.sink.on_steps(self.run_id, block)
            if not reason and tr.step % tr.eval_every == 0:
                self._evaluate(with_grid=True)
        except Exception as exc:  # answer the waiting caller, then let the loop end the run
            done.set_exception(ControlError(f"the step failed: {exc}"))
            raise
        done.set_result(row)
        return reason

    def _grid_due(self) -> bool:
        now = time.perf_counter()
        if now - self._last_grid < GRID_INTERVAL:
            return False
        self._last_grid = now
        return True

    def _evaluate(self, with_grid: bool) -> None:
        ev, events = self.trainer.evaluate(with_grid)
        self._flush()
        self.summary.update({k: ev[k] for k in SUMMARY_KEYS})
        self._emit(ev)
        for e in events:
            self._emit(e)

    def _flush(self) -> None:
        self._last_flush = time.perf_counter()
        if self.trainer.buffer.n:
            self.sink.on_steps(self.run_id, self.trainer.buffer.take())

    def _announce(self, state: str) -> None:
        if self._announced != state:
            self._announced = state
            self._flush()
            self._emit_state()

    def _emit_state(self) -> None:
        self._emit(
            {
                "type": "state",
                "state": self._announced,
                "step": self.trainer.step,
                "steps_per_second": self.steps_per_second,
            }
        )

    def _emit(self, event: dict) -> None:
        self.sink.on_event(self.run_id, event)

    def _finish(self, final: str, reason: str | None) -> None:
        tr = self.trainer
        try:
            if final == "diverged":
                self._flush()
                self._emit({"type": "alarm", "step": tr.step, "reason": reason})
            elif final != "failed":
                self._evaluate(with_grid=True)
            self._flush()
        except Exception:
            log.exception("run %s could not finish cleanly", self.run_id)
        self.summary.update({"step": tr.step, "state": final, "reason": reason})
        with self._lock:
            self._final = final
            pending, self._pending = self._pending, []
        for done in pending:
            done.set_exception(ControlError(f"the run ended as {final}"))
        self._emit({"type": "end", "state": final, "step": tr.step, "summary": self.summary})
