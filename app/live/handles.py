"""The child process a run trains in, and its handle in the server (`ProcessRun`).

Training in a child keeps the network off the server's GIL, so fan-out to viewers never
takes time from training (docs/benchmarks.md, "Fan-out"). The child runs the `Runner`;
everything it emits comes back through a pipe, each event with the runner's status
(state, tempo, step, epoch, summary), and `end` with the final model in the same
message. A reader thread hands steps and events to the server's sink.
"""

import itertools
import logging
import multiprocessing as mp
import signal
import threading
from concurrent.futures import Future
from multiprocessing.connection import Connection

from app.engine.config import RunConfig
from app.engine.steps import concat_blocks
from app.engine.tables import Table
from app.engine.trainer import Trainer
from app.live.handle import ControlError, Sink, batched, control, end_event, final_summary
from app.live.runner import Runner
from app.live.snapshots import SnapshotPlan, snapshot_cap, take_snapshot
from app.live.states import RunState

log = logging.getLogger(__name__)

CONTROL_TIMEOUT = 10.0  # s a control may take in the child before it is reported as failed
POLL_INTERVAL = 0.2  # s between the child's checks that its run is still going
_context = mp.get_context("forkserver")
_context.set_forkserver_preload(["app.live.handles"])  # children fork with numpy already loaded


def _status(runner: Runner) -> tuple:
    """What the server mirrors of the child's run: state, tempo, step, epoch, summary."""
    tr = runner.trainer
    return str(runner.state), runner.steps_per_second, tr.step, tr.epoch, dict(runner.summary)


class _PipeSink:
    """The child's sink: steps and evaluations go up the pipe in batches.

    An unpaced run evaluates every 50 steps, handing over a block and an eval each time:
    hundreds of pipe messages a second, each pickled here and unpickled by the server's
    reader thread, which shares the server's core (and GIL) with the fan-out. Batched,
    they are one message per `flush` (the runner's, about 60 a second while it trains,
    and before it waits), holding the batch's steps as one block, then its evals: so the
    server's pump, woken by the block, finds every step of the batch at once. That is
    the order a viewer gets a tick in anyway (its frame, then its evals; each eval
    carries its step). Any other event (state, change, chime, alarm, end, ...) goes at
    once, behind everything before it, and so does a control's reply.
    """

    def __init__(self, conn: Connection, layers: list[int]) -> None:
        self.conn, self.lock = conn, threading.Lock()
        self.runner: Runner | None = None
        self.snapshots = SnapshotPlan(snapshot_cap(layers))  # which evals send their weights
        self.blocks: list = []
        self.evals: list[tuple] = []

    def on_steps(self, run_id: str, block) -> None:
        with self.lock:
            self.blocks.append(block)

    def on_event(self, run_id: str, event: dict) -> None:
        status = _status(self.runner)
        model = None  # the final model with `end`, a weight snapshot with a kept `eval`
        if event["type"] == "end":
            model = self.runner.trainer.model()
        elif event["type"] == "eval":
            keep, dropped = self.snapshots.add(event["step"])
            if keep or dropped:
                net = self.runner.trainer.net
                model = take_snapshot(net, dropped) if keep else {"dropped": dropped}
        item = ("event", event, status, model)
        with self.lock:
            if event["type"] == "eval":
                self.evals.append(item)
            else:
                self._send_batch(item)

    def flush(self) -> None:
        with self.lock:
            self._send_batch()

    def reply(self, message: tuple) -> None:
        """A control's answer, behind everything emitted before it."""
        with self.lock:
            self._send_batch()
            self.conn.send(message)

    def _send_batch(self, *last: tuple) -> None:  # (holding the lock)
        batch = [("steps", concat_blocks(self.blocks, 0))] if self.blocks else []
        batch += [*self.evals, *last]
        if batch:
            self.blocks, self.evals = [], []
            self.conn.send(("batch", batch))


def _child(conn: Connection, run_id: str, config: dict, table: Table | None = None) -> None:
    """The training process: run the loop, answer controls, exit when the run ends.

    An uploaded set's rows come with the job (`table`): the child never opens the store."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the server's to handle
    cfg = RunConfig.model_validate(config)
    trainer = Trainer(cfg, table=table)
    sink = _PipeSink(conn, cfg.layers)
    runner = sink.runner = Runner(run_id, trainer, sink, cfg.steps_per_second, cfg.start_paused)
    runner.start()
    try:
        while runner.alive:
            if not conn.poll(POLL_INTERVAL):
                continue
            call_id, action, arg = conn.recv()
            try:
                if action == "model":
                    result = trainer.model()
                elif action == "halt":
                    result = runner.halt(arg)
                elif action == "tempo":
                    result = control(runner, action, steps_per_second=arg)
                else:
                    result = control(runner, action, changes=arg)
                ok = True
            except ControlError as exc:
                result, ok = str(exc), False
            sink.reply(("reply", call_id, ok, result, _status(runner)))
    except (EOFError, OSError):  # the server went away: end the run rather than orphan it
        runner.halt(RunState.INTERRUPTED)
    runner.join(CONTROL_TIMEOUT)


class ProcessRun:
    """A run trained by a child process; this handle mirrors the status the child sends."""

    controls = Runner.controls  # the child's runner answers every control

    def __init__(self, run_id: str, config: RunConfig, table: Table | None = None) -> None:
        self.run_id = run_id
        self.sink: Sink | None = None
        self.state = RunState.PAUSED if config.start_paused else RunState.RUNNING
        self.steps_per_second = config.steps_per_second
        self.summary: dict = {}
        self.current_step = self.current_epoch = 0
        self._ended = False
        self._final_model: dict | None = None
        self._conn, child_conn = _context.Pipe()
        self._process = _context.Process(
            target=_child,
            args=(child_conn, run_id, config.model_dump(), table),
            name=f"run-{run_id}",
            daemon=True,
        )
        self._child_conn = child_conn
        self._calls: dict[int, Future] = {}
        self._ids = itertools.count()
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"read-{run_id}", daemon=True)

    @property
    def alive(self) -> bool:
        return not self._ended

    def start(self, sink: Sink) -> None:
        self.sink = sink
        self._process.start()
        self._child_conn.close()
        self._reader.start()

    def pause(self) -> None:
        self._call("pause", None)

    def resume(self) -> None:
        self._call("resume", None)

    def step(self) -> dict:
        return self._call("step", None)

    def set_tempo(self, steps_per_second: float | None) -> None:
        self._call("tempo", steps_per_second)

    def set(self, changes: dict) -> dict:
        return self._call("set", changes)

    def stop(self) -> None:
        self._call("stop", None)

    def model(self) -> dict:
        if self._final_model is not None:
            return self._final_model
        return self._call("model", None)

    def halt(self, state: RunState = RunState.INTERRUPTED) -> None:
        if self.alive:
            try:
                self._send((next(self._ids), "halt", RunState(state)))
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
            ok, result, status = done.result(CONTROL_TIMEOUT)
        except TimeoutError as exc:
            raise ControlError(f"{action} got no answer within {CONTROL_TIMEOUT:g} s") from exc
        finally:
            self._calls.pop(call_id, None)
        if not ok:
            raise ControlError(result)
        self._mirror(status)
        return result

    def _mirror(self, status: tuple) -> None:
        if self._ended:
            return
        state, self.steps_per_second, step, epoch, self.summary = status
        self.state = RunState(state)
        self.current_step, self.current_epoch = max(self.current_step, step), epoch

    def _read(self) -> None:
        """Reader thread: hand steps and events to the sink, answers to their callers."""
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            if message[0] == "batch":
                with batched(self.sink):
                    for item in message[1]:
                        self._deliver(item)
            elif (done := self._calls.get(message[1])) is not None:  # a reply
                done.set_result(message[2:])
        if not self._ended:  # the child died without saying goodbye
            reason = f"the training process exited with code {self._process.exitcode}"
            self.summary = final_summary(self.summary, RunState.FAILED, self.current_step, reason)
            self.state, self._ended = RunState.FAILED, True
            self.sink.on_event(self.run_id, end_event(self.state, self.current_step, self.summary))
        for done in list(self._calls.values()):
            if not done.done():
                done.set_exception(ControlError("the training process has ended"))

    def _deliver(self, item: tuple) -> None:
        """One step block or event of a batch, to the sink, with the status it came with."""
        if item[0] == "steps":
            block = item[1]
            self.current_step = int(block["step"][-1])
            self.current_epoch = int(block["epoch"][-1])
            self.sink.on_steps(self.run_id, block)
            return
        _, event, status, model = item
        self._mirror(status)
        if event["type"] == "end":
            self._final_model, self._ended = model, True
        elif model is not None:  # the recorder stores it; viewers never see it
            event = {**event, "snapshot": model}
        self.sink.on_event(self.run_id, event)
