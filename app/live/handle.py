"""The run-handle contract: what the server may ask of a run, wherever its steps come from.

Three kinds of producer implement `RunHandle`:

- `ProcessRun` (app/live/handles.py): a child process of this server trains the network;
- an external run: a user's own training script streams its steps in (HTTP or websocket);
- a remote run: a training worker on another machine, reached through Redis.

The manager builds a handle from the run's id and its `RunConfig`, then calls
`start(sink)`. From then on the handle delivers to that sink, in order and from one
thread at a time:

- `sink.on_steps(run_id, block)`: step blocks whose columns are `app.engine.steps.COLUMNS`
  (a whole number of steps; per-layer columns are (n, layers));
- `sink.on_event(run_id, event)`: small dicts with a `type` (`state`, `eval`, `chime`,
  `alarm`, `overfit`, ...; docs/protocol.md), and last of all exactly one `end` event,
  built by `end_event`, after which nothing more is delivered.

By the time the sink sees `end`, `model()` returns the final parameters (or raises
`ControlError` when the run has none, e.g. a crashed process) and `summary` is final: a
handle that learns its model and summary from afar keeps them before it hands `end` on.

Controls are blocking calls (the server runs them in a worker thread). A control that
makes no sense now, or that this producer cannot honour (`controls` lists the ones it
can), raises `ControlError` with one sentence saying why; it never half-applies. The
mirrored attributes (`state`, `steps_per_second`, `current_step`, ...) are cheap reads
that never block: the listing and every hello read them.
"""

import contextlib
from typing import Protocol, runtime_checkable

from app.engine.steps import StepBlock
from app.live.states import RunState

CONTROLS = frozenset({"pause", "resume", "step", "tempo", "set", "stop"})  # every control
SUMMARY_KEYS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")  # from evals


class ControlError(RuntimeError):
    """A control that makes no sense in the run's current state (or for its producer)."""


class Sink(Protocol):
    """Where a run's steps and events go (the live channel, wrapped by its recorder).

    A producer that receives several at once (a child's batch) hands them over inside
    `batched(sink)`: a sink with a `batch()` context (the channel) then wakes its
    consumer once, at the end, so it never sees half a batch."""

    def on_steps(self, run_id: str, block: StepBlock) -> None: ...
    def on_event(self, run_id: str, event: dict) -> None: ...


def batched(sink: Sink) -> contextlib.AbstractContextManager:
    """The sink's `batch()` if it has one, else a context that does nothing."""
    batch = getattr(sink, "batch", None)
    return batch() if batch is not None else contextlib.nullcontext()


@runtime_checkable
class RunHandle(Protocol):
    """One run as the manager, the channel and the routes see it."""

    run_id: str
    controls: frozenset[str]  # the subset of CONTROLS this producer honours

    @property
    def state(self) -> RunState: ...
    @property
    def alive(self) -> bool:
        """False once `end` has been delivered (or is about to be)."""

    @property
    def steps_per_second(self) -> float | None:
        """The tempo; None is unpaced."""

    @property
    def current_step(self) -> int: ...
    @property
    def current_epoch(self) -> int: ...
    @property
    def summary(self) -> dict:
        """SUMMARY_KEYS from the latest evaluation, plus `state`, `step`, `reason` at the end."""

    def start(self, sink: Sink) -> None:
        """Begin producing into `sink`; returns once the producer is under way."""

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def step(self) -> dict:
        """Advance a paused run by one step; answers with that step (`block_row`)."""

    def set_tempo(self, steps_per_second: float | None) -> None: ...
    def set(self, changes: dict) -> dict:
        """Change live knobs (learning rate, ...) without a restart; answers with the config."""

    def stop(self) -> None:
        """End the run as `stopped`; returns once it has ended."""

    def model(self) -> dict:
        """Architecture and parameters now (or the final ones once ended)."""

    def halt(self, state: RunState = RunState.INTERRUPTED) -> None:
        """End without state checks (server shutdown); does not wait."""

    def join(self, timeout: float | None = None) -> None:
        """Wait up to `timeout` s for the producer to finish, then let it go."""


def control(
    handle: RunHandle,
    action: str,
    steps_per_second: float | None = None,
    changes: dict | None = None,
):
    """Apply one named control (the API's and the websocket's `action`) to a handle."""
    if action not in CONTROLS:
        raise ControlError(f"unknown action {action!r}")
    if action not in handle.controls:
        raise ControlError(f"cannot {action}: this run does not support it")
    if action == "pause":
        handle.pause()
    elif action == "resume":
        handle.resume()
    elif action == "tempo":
        handle.set_tempo(steps_per_second)
    elif action == "step":
        return handle.step()
    elif action == "set":
        return handle.set(changes or {})
    elif action == "stop":
        handle.stop()
    return None


def end_event(state: RunState | str, step: int, summary: dict) -> dict:
    """The last event of every stream, live or replayed: how the run ended and its summary."""
    return {"type": "end", "state": str(state), "step": int(step), "summary": summary}


def final_summary(
    latest: dict | None, state: RunState | str, step: int, reason: str | None
) -> dict:
    """A run's summary at its end: its latest evaluation's losses and how it ended."""
    base = {k: (latest or {}).get(k) for k in SUMMARY_KEYS} if latest else {}
    return {**base, "step": int(step), "state": str(state), "reason": reason}
