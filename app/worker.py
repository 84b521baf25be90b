"""Where a run trains: a child process of its own (the default), or a thread of the server.

In a thread, training and the event loop share one GIL, so every microsecond spent
sending frames to viewers is taken from training (docs/benchmarks.md, "Fan-out"). In a
child process the network keeps a core to itself; step blocks and events come back
through a pipe and a reader thread hands them to the same sink a thread run uses.
Both handles offer the same small interface to the manager and the routes.
"""

import itertools
import logging
import multiprocessing as mp
import signal
import threading
from concurrent.futures import Future
from multiprocessing.connection import Connection

from app.config import RunConfig
from app.engine import Trainer
from app.runner import SUMMARY_KEYS, ControlError, Runner, Sink

log = logging.getLogger(__name__)

CONTROL_TIMEOUT = 10.0  # s a control may take in the child before it is reported as failed
POLL_INTERVAL = 0.2  # s between the child's checks that its run is still going
_context = mp.get_context("forkserver")
_context.set_forkserver_preload(["app.worker"])  # children fork with numpy already loaded


class ThreadRun:
    """A run trained by a thread of this process."""

    def __init__(self, run_id: str, config: RunConfig, sink: Sink) -> None:
        self.trainer = Trainer(config)
        self.runner = Runner(
            run_id, self.trainer, sink, config.steps_per_second, config.start_paused
        )

    state = property(lambda self: self.runner.state)
    alive = property(lambda self: self.runner.alive)
    steps_per_second = property(lambda self: self.runner.steps_per_second)
    summary = property(lambda self: self.runner.summary)
    current_step = property(lambda self: self.trainer.step)
    current_epoch = property(lambda self: self.trainer.epoch)

    def start(self) -> None:
        self.runner.start()

    def control(self, action: str, steps_per_second: float | None = None) -> dict | None:
        """pause | resume | tempo | step | stop; `step` answers with that step's metrics."""
        return _apply(self.runner, action, steps_per_second)

    def model(self) -> dict:
        return self.trainer.model()

    def halt(self, state: str = "interrupted") -> None:
        self.runner.halt(state)

    def join(self, timeout: float | None = None) -> None:
        self.runner.join(timeout)


def _apply(runner: Runner, action: str, steps_per_second: float | None) -> dict | None:
    if action == "pause":
        runner.pause()
    elif action == "resume":
        runner.resume()
    elif action == "tempo":
        runner.set_tempo(steps_per_second)
    elif action == "step":
        return runner.step()
    elif action == "stop":
        runner.stop()
    else:
        raise ControlError(f"unknown action {action!r}")
    return None


class _PipeSink:
    """The child's sink: everything the runner emits goes up the pipe, one message at a time.

    The final parameters go up just before `end`, so the server can keep them.
    """

    def __init__(self, conn: Connection, lock: threading.Lock, trainer: Trainer) -> None:
        self.conn, self.lock, self.trainer = conn, lock, trainer

    def on_steps(self, run_id: str, block) -> None:
        with self.lock:
            self.conn.send(("steps", block))

    def on_event(self, run_id: str, event: dict) -> None:
        with self.lock:
            if event["type"] == "end":
                self.conn.send(("model", self.trainer.model()))
            self.conn.send(("event", event))


def _child(conn: Connection, run_id: str, config: dict) -> None:
    """The training process: run the loop, answer controls, exit when the run ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the server's to handle
    lock = threading.Lock()
    cfg = RunConfig.model_validate(config)
    trainer = Trainer(cfg)
    sink = _PipeSink(conn, lock, trainer)
    runner = Runner(run_id, trainer, sink, cfg.steps_per_second, cfg.start_paused)
    runner.start()
    try:
        while runner.alive:
            if not conn.poll(POLL_INTERVAL):
                continue
            call_id, action, arg = conn.recv()
            try:
                if action == "model":
                    result, ok = trainer.model(), True
                elif action == "halt":
                    runner.halt(arg)
                    result, ok = None, True
                else:
                    result, ok = _apply(runner, action, arg), True
            except ControlError as exc:
                result, ok = str(exc), False
            status = (runner.state, runner.steps_per_second, trainer.step)
            with lock:
                conn.send(("reply", call_id, ok, result, status))
    except (EOFError, OSError):  # the server went away: end the run rather than orphan it
        runner.halt("interrupted")
    runner.join(CONTROL_TIMEOUT)


class ProcessRun:
    """A run trained by a child process; this handle mirrors its state from what it sends."""

    def __init__(self, run_id: str, config: RunConfig, sink: Sink) -> None:
        self.run_id, self.sink = run_id, sink
        self._state = "paused" if config.start_paused else "running"
        self._final: str | None = None
        self.steps_per_second = config.steps_per_second
        self.summary: dict = {}
        self.current_step = self.current_epoch = 0
        self._final_model: dict | None = None
        self._conn, child_conn = _context.Pipe()
        self._process = _context.Process(
            target=_child,
            args=(child_conn, run_id, config.model_dump()),
            name=f"run-{run_id}",
            daemon=True,
        )
        self._child_conn = child_conn
        self._calls: dict[int, Future] = {}
        self._ids = itertools.count()
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"read-{run_id}", daemon=True)

    @property
    def state(self) -> str:
        return self._final or self._state

    @property
    def alive(self) -> bool:
        return self._final is None

    def start(self) -> None:
        self._process.start()
        self._child_conn.close()
        self._reader.start()

    def control(self, action: str, steps_per_second: float | None = None) -> dict | None:
        return self._call(action, steps_per_second)

    def model(self) -> dict:
        if self._final_model is not None:
            return self._final_model
        return self._call("model", None)

    def halt(self, state: str = "interrupted") -> None:
        if self.alive:
            try:
                self._send((next(self._ids), "halt", state))
            except (OSError, ValueError):
                self._process.kill()

    def join(self, timeout: float | None = None) -> None:
        self._process.join(timeout)
        if self._process.is_alive():
            log.warning("run %s did not stop in %s s; killing it", self.run_id, timeout)
            self._process.kill()
            self._process.join(1.0)
        self._reader.join(1.0)

    def _send(self, message: tuple) -> None:
        with self._send_lock:
            self._conn.send(message)

    def _call(self, action: str, arg):
        if not self.alive:
            raise ControlError(f"cannot {action}: the run is {self.state}")
        call_id, done = next(self._ids), Future()
        self._calls[call_id] = done
        try:
            self._send((call_id, action, arg))
        except (OSError, ValueError) as exc:
            self._calls.pop(call_id, None)
            raise ControlError(f"cannot {action}: the training process is gone") from exc
        try:
            ok, result, (state, tempo, step) = done.result(CONTROL_TIMEOUT)
        except TimeoutError as exc:
            raise ControlError(f"{action} got no answer within {CONTROL_TIMEOUT:g} s") from exc
        finally:
            self._calls.pop(call_id, None)
        if not ok:
            raise ControlError(result)
        if self._final is None:
            self._state, self.steps_per_second = state, tempo
            self.current_step = max(self.current_step, step)
        return result

    def _read(self) -> None:
        """Reader thread: hand steps and events to the sink, answers to their callers."""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "steps":
                block = message[1]
                self.current_step = int(block["step"][-1])
                self.current_epoch = int(block["epoch"][-1])
                self.sink.on_steps(self.run_id, block)
            elif kind == "event":
                self._observe(message[1])
                self.sink.on_event(self.run_id, message[1])
            elif kind == "model":
                self._final_model = message[1]
            elif (done := self._calls.get(message[1])) is not None:
                done.set_result(message[2:])
        if self._final is None:  # the child died without saying goodbye
            self._final = "failed"
            reason = f"the training process exited with code {self._process.exitcode}"
            self.summary.update(state="failed", reason=reason, step=self.current_step)
            end = {"type": "end", "state": "failed", "step": self.current_step}
            self.sink.on_event(self.run_id, {**end, "summary": self.summary})
        for done in list(self._calls.values()):
            if not done.done():
                done.set_exception(ControlError("the training process has ended"))

    def _observe(self, event: dict) -> None:
        kind = event["type"]
        if kind == "state":
            self._state, self.steps_per_second = event["state"], event["steps_per_second"]
        elif kind == "eval":
            self.summary.update({k: event[k] for k in SUMMARY_KEYS})
        elif kind == "end":
            self.summary = event["summary"]
            self._final = event["state"]
