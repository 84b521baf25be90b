"""The training loop in its own thread: start, pause, resume, single step, stop, live tempo.

It hands blocks of step records and events to a sink and knows nothing of servers.

A sink that sends in batches (the child's pipe, `app/live/handles.py`) may have a
`flush()`: the runner calls it at least every HANDOFF_INTERVAL while it trains, and
before every wait (paused, or between steps of a paced run), so nothing handed over sits
in a batch while the run is quiet.
"""

import logging
import threading
import time
from concurrent.futures import Future

from app.engine.steps import block_row
from app.engine.trainer import Trainer
from app.live.handle import SUMMARY_KEYS, ControlError, Sink, end_event, final_summary
from app.live.states import RunState

log = logging.getLogger(__name__)

HANDOFF_INTERVAL = 1 / 60  # s between flushes to the sink while training (the wire's frame rate)
GRID_INTERVAL = 0.1  # s between decision grids when running unpaced
TEMPO_SLACK = 0.25  # s behind the tempo before the schedule restarts instead of bursting
STEP_TIMEOUT = 10.0  # s a single step may take before its caller is told it failed
CONVERGED = "converged"  # _evaluate's answer when the chime ends the run (stop_at_convergence)

__all__ = ["SUMMARY_KEYS", "ControlError", "Runner"]


class Runner:
    """Owns one Trainer and the thread that drives it.

    Its whole condition is one `RunState`: controls move it between running and paused,
    or to an ended state that the loop then honours; the loop's end makes it final.
    """

    controls = frozenset({"pause", "resume", "step", "tempo", "set", "stop"})

    def __init__(
        self,
        run_id: str,
        trainer: Trainer,
        sink: Sink,
        steps_per_second: float | None = None,
        start_paused: bool = False,
    ) -> None:
        self.run_id, self.trainer, self.sink = run_id, trainer, sink
        self._sink_flush = getattr(sink, "flush", None)  # a batching sink's (see above)
        self.steps_per_second = steps_per_second
        self._state = RunState.PAUSED if start_paused else RunState.RUNNING
        self._pending: list[Future] = []
        self._changes: list[tuple[dict, Future]] = []  # live knobs, applied between steps
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._ended = threading.Event()  # set once `end` has been handed to the sink
        self._announced = RunState.STARTING  # the state the sink was last told
        self.summary: dict = {}
        self._thread = threading.Thread(target=self._loop, name=f"run-{run_id}", daemon=True)

    # -- controls (any thread) -------------------------------------------------
    @property
    def state(self) -> RunState:
        return self._state

    @property
    def alive(self) -> bool:
        return not self._ended.is_set()

    def start(self) -> None:
        self._thread.start()

    def pause(self) -> None:
        self._move(RunState.RUNNING, RunState.PAUSED, "pause")

    def resume(self) -> None:
        self._move(RunState.PAUSED, RunState.RUNNING, "resume")

    def _move(self, source: RunState | None, target: RunState, action: str) -> None:
        with self._lock:
            self._require(source is None or self._state is source, action)
            self._state = target
        self._wake.set()

    def set_tempo(self, steps_per_second: float | None) -> None:
        with self._lock:
            self._require(True, "tempo")
            self.steps_per_second = steps_per_second
        self._wake.set()

    def step(self, timeout: float = STEP_TIMEOUT) -> dict:
        """Advance a paused run by exactly one optimizer step; returns that step's metrics."""
        done: Future = Future()
        with self._lock:
            self._require(self._state is RunState.PAUSED, "step")
            self._pending.append(done)
        self._wake.set()
        try:
            return done.result(timeout)
        except TimeoutError as exc:
            raise ControlError(f"the step did not finish within {timeout:g} s") from exc

    def set(self, changes: dict, timeout: float = STEP_TIMEOUT) -> dict:
        """Change live settings before the next step; answers with the run's new config."""
        done: Future = Future()
        with self._lock:
            self._require(True, "set")
            self._changes.append((changes, done))
        self._wake.set()
        try:
            return done.result(timeout)
        except TimeoutError as exc:
            raise ControlError(f"the change did not apply within {timeout:g} s") from exc

    def stop(self, timeout: float | None = 5.0) -> None:
        self._move(None, RunState.STOPPED, "stop")
        self.join(timeout)

    def halt(self, state: RunState = RunState.INTERRUPTED) -> None:
        """Stop without state checks (server shutdown); the run ends as `state`."""
        with self._lock:
            if self._state.live:
                self._state = RunState(state)
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _require(self, ok: bool, action: str) -> None:
        if self._state.ended or not ok:
            raise ControlError(f"cannot {action}: the run is {self._state}")

    # -- the loop (training thread) ----------------------------------------------
    def _loop(self) -> None:
        tr = self.trainer
        final, reason = RunState.FINISHED, None
        self._last_flush = self._last_grid = time.perf_counter()
        next_due: float | None = None
        tempo = self.steps_per_second
        try:
            reason = self._evaluate(with_grid=True)
            while not reason:
                if self._changes:
                    self._apply_changes()
                if self._state.ended:  # stopped or halted
                    final = self._state
                    break
                if tr.done:
                    break
                if self.steps_per_second != tempo:  # a new tempo is announced even while paused
                    tempo, next_due = self.steps_per_second, None
                    if self._announced is not RunState.STARTING:
                        self._emit_state()
                if self._state is RunState.PAUSED:
                    if self._pending:
                        reason = self._single_step()
                        continue
                    self._announce(RunState.PAUSED)
                    self._flush()
                    self._wake.wait()
                    self._wake.clear()
                    next_due = None
                    continue
                self._announce(RunState.RUNNING)
                if tempo:
                    now = time.perf_counter()
                    if next_due is None or now - next_due > TEMPO_SLACK:
                        next_due = now
                    if next_due > now:
                        self._flush()
                        if self._wake.wait(next_due - now):
                            self._wake.clear()
                        continue
                    next_due += 1.0 / tempo
                reason = tr.train_step()
                if not reason and tr.step % tr.eval_every == 0:
                    reason = self._evaluate(with_grid=bool(tempo) or self._grid_due())
                if tr.buffer.full or time.perf_counter() - self._last_flush >= HANDOFF_INTERVAL:
                    self._flush()
            if reason == CONVERGED:
                final, reason = RunState.CONVERGED, None
            elif reason:
                final = RunState.DIVERGED
        except Exception as exc:  # a bug must end the run visibly, never kill the server
            log.exception("run %s failed", self.run_id)
            final, reason = RunState.FAILED, f"{type(exc).__name__}: {exc}"
        self._finish(final, reason)

    def _apply_changes(self) -> None:
        """Apply every queued change at this step boundary and announce each one."""
        with self._lock:
            queued, self._changes = self._changes, []
        for changes, done in queued:
            try:
                notes = self.trainer.apply_changes(changes)
            except ValueError as exc:
                done.set_exception(ControlError(str(exc)))
                continue
            self._hand_off()
            event = {"type": "change", "step": self.trainer.step, "changes": changes}
            if notes:
                event["notes"] = notes
            self._emit(event)
            done.set_result({"config": self.trainer.config.model_dump(), "notes": notes})

    def _single_step(self) -> str | None:
        tr = self.trainer
        done = self._pending.pop(0)
        try:
            reason = tr.train_step()
            block = tr.buffer.take()
            row = block_row(block, len(block["step"]) - 1)
            self.sink.on_steps(self.run_id, block)
            if not reason and tr.step % tr.eval_every == 0:
                reason = self._evaluate(with_grid=True)
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

    def _evaluate(self, with_grid: bool) -> str | None:
        """Evaluate and emit; returns why the run must end (divergence, or CONVERGED)."""
        ev, events = self.trainer.evaluate(with_grid)
        self._hand_off()
        self.summary.update({k: ev[k] for k in SUMMARY_KEYS})
        self._emit(ev)
        end = None
        for e in events:
            if e["type"] == "alarm":  # _finish sounds it, as for a loss that blew up
                return e["reason"]
            self._emit(e)
            if e["type"] == "chime" and self.trainer.config.stop_at_convergence:
                end = CONVERGED
        return end

    def _hand_off(self) -> None:
        """The steps so far to the sink, so that what is emitted next follows them."""
        if self.trainer.buffer.n:
            self.sink.on_steps(self.run_id, self.trainer.buffer.take())

    def _flush(self) -> None:
        """The steps so far to the sink, and a batching sink's batch on its way."""
        self._last_flush = time.perf_counter()
        self._hand_off()
        if self._sink_flush is not None:
            self._sink_flush()

    def _announce(self, state: RunState) -> None:
        if self._announced != state:
            self._announced = state
            self._hand_off()
            self._emit_state()

    def _emit_state(self) -> None:
        self._emit(
            {
                "type": "state",
                "state": str(self._announced),
                "step": self.trainer.step,
                "steps_per_second": self.steps_per_second,
            }
        )

    def _emit(self, event: dict) -> None:
        self.sink.on_event(self.run_id, event)

    def _finish(self, final: RunState, reason: str | None) -> None:
        tr = self.trainer
        try:
            if final is RunState.DIVERGED:
                self._hand_off()
                self._emit({"type": "alarm", "step": tr.step, "reason": reason})
            elif final not in (RunState.FAILED, RunState.CONVERGED):
                self._evaluate(with_grid=True)
            self._hand_off()
        except Exception:
            log.exception("run %s could not finish cleanly", self.run_id)
        self.summary = final_summary(self.summary, final, tr.step, reason)
        with self._lock:
            self._state = final
            pending, self._pending = self._pending, []
        for done in pending:
            done.set_exception(ControlError(f"the run ended as {final}"))
        self._emit(end_event(final, tr.step, self.summary))
        self._flush()
        self._ended.set()
