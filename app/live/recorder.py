"""A live run's sink: every step block and event is recorded in the store, then fanned out.

Recording comes first, before the run can report its next state, so a client that sees
`finished` (or a step's answer) already finds those steps in the history. An evaluation may
carry a weight snapshot (app/live/snapshots.py): the store keeps it, viewers never see it.
"""

import contextlib
import logging

from app.engine.steps import StepBlock, finite
from app.live.channel import Channel
from app.live.handle import ControlError, RunHandle, Sink, batched
from app.store import RunStore

log = logging.getLogger(__name__)


class Recorder:
    """Wraps a run's channel: the store hears everything the viewers hear, and the final model."""

    def __init__(self, store: RunStore, channel: Channel | Sink, handle: RunHandle) -> None:
        self.store, self.channel, self.handle = store, channel, handle

    def batch(self) -> contextlib.AbstractContextManager:
        return batched(self.channel)

    def on_steps(self, run_id: str, block: StepBlock) -> None:
        self._record(self.store.append_steps, run_id, block)
        self.channel.on_steps(run_id, block)

    def on_event(self, run_id: str, event: dict) -> None:
        snapshot = event.pop("snapshot", None) if event.get("type") == "eval" else None
        if snapshot is not None:
            self._record(self._record_snapshot, run_id, (event["step"], snapshot))
        event = finite(event)
        self._record(self._record_event, run_id, event)
        self.channel.on_event(run_id, event)

    def _record_event(self, run_id: str, event: dict) -> None:
        self.store.append_event(run_id, event)
        kind = event["type"]
        if kind == "state":
            self.store.set_state(run_id, event["state"], step=event["step"])
        elif kind == "end":
            self.store.set_state(
                run_id, event["state"], step=event["step"], summary=event["summary"]
            )
            with contextlib.suppress(ControlError):  # a crashed run has no model to give
                self.store.append_event(run_id, {"type": "model", **self.handle.model()})

    def _record_snapshot(self, run_id: str, item: tuple[int, dict]) -> None:
        step, snapshot = item
        self.store.drop_snapshots(run_id, snapshot.get("dropped", []))
        if "weights" in snapshot:
            self.store.append_snapshot(run_id, step, snapshot)

    def _record(self, write, run_id: str, item) -> None:
        """A history write that fails is logged; it must not end training or the stream."""
        try:
            write(run_id, item)
        except Exception:
            log.exception("run %s: could not record %s", run_id, type(item).__name__)
