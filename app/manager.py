"""The run manager: creates runs, caps how many train at once, wires each to stream and store."""

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field

from app.config import RunConfig
from app.hub import Channel
from app.runner import LIVE_STATES, ControlError
from app.store import RunStore
from app.worker import ProcessRun, ThreadRun

RunHandle = ProcessRun | ThreadRun


class TooManyRuns(RuntimeError):
    """More live runs than the server trains at once."""


@dataclass
class LiveRun:
    id: str
    config: RunConfig
    runner: RunHandle
    channel: Channel
    created: float
    pump: asyncio.Task | None = field(default=None, repr=False)

    def describe(self) -> dict:
        return {
            "id": self.id,
            "state": self.runner.state,
            "step": self.runner.current_step,
            "epoch": self.runner.current_epoch,
            **self.config.describe(),
            "steps_per_second": self.runner.steps_per_second,
            "created": self.created,
        }


class RunManager:
    """Owns the live runs; everything it does on the event loop is quick."""

    def __init__(
        self, store: RunStore, max_concurrent: int = 2, isolation: str = "process"
    ) -> None:
        self.store, self.max_concurrent = store, max_concurrent
        self.handle_type = ProcessRun if isolation == "process" else ThreadRun
        self.runs: dict[str, LiveRun] = {}
        self.starting = 0  # creations awaiting their Trainer: they hold a slot under the cap

    def live_count(self) -> int:
        return sum(1 for r in self.runs.values() if r.runner.alive)

    async def create(self, config: RunConfig) -> LiveRun:
        if self.live_count() + self.starting >= self.max_concurrent:
            raise TooManyRuns(
                f"{self.max_concurrent} runs are already training; stop one first "
                f"(the limit is {self.max_concurrent} at once)"
            )
        self.starting += 1
        try:
            run_id = secrets.token_hex(6)
            created = time.time()
            holder: dict[str, LiveRun] = {}
            channel = Channel(
                run_id,
                len(config.layers) - 1,
                asyncio.get_running_loop(),
                describe=lambda: holder["run"].describe(),
                persist_steps=lambda block: self.store.append_steps(run_id, block),
                persist_event=lambda event: self._persist_event(run_id, event),
            )
            handle = await asyncio.to_thread(self.handle_type, run_id, config, channel)
        finally:
            self.starting -= 1
        run = holder["run"] = LiveRun(run_id, config, handle, channel, created)
        self.store.create_run(run_id, config.model_dump(), config.layers, created)
        self.runs[run_id] = run
        run.pump = asyncio.create_task(channel.pump(), name=f"pump-{run_id}")
        await asyncio.to_thread(handle.start)
        return run

    def _persist_event(self, run_id: str, event: dict) -> None:
        self.store.append_event(run_id, event)
        kind = event["type"]
        if kind == "state":
            self.store.set_state(run_id, event["state"], step=event["step"])
        elif kind == "end":
            self.store.set_state(
                run_id, event["state"], step=event["step"], summary=event["summary"]
            )
            run = self.runs.get(run_id)
            if run is not None:  # keep the final parameters so exports outlive the server
                with contextlib.suppress(ControlError):  # a crashed run has none to give
                    self.store.append_event(run_id, {"type": "model", **run.runner.model()})

    def get(self, run_id: str) -> LiveRun | None:
        return self.runs.get(run_id)

    def checkpoint(self) -> None:
        """Record live runs' progress so the listing and a crash both see a recent step."""
        for run in self.runs.values():
            if run.runner.state in LIVE_STATES:
                self.store.set_state(run.id, run.runner.state, step=run.runner.current_step)

    async def delete(self, run_id: str) -> None:
        run = self.runs.pop(run_id, None)
        if run is not None:
            if run.runner.alive:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(run.runner.control, "stop")
            if run.pump is not None:
                run.pump.cancel()

    async def shutdown(self, timeout: float = 2.0) -> None:
        """Stop every training thread (each within the timeout) and let the pumps drain."""
        live = [r for r in self.runs.values() if r.runner.alive]
        for run in live:
            run.runner.halt("interrupted")
        await asyncio.to_thread(lambda: [r.runner.join(timeout) for r in live])
        await asyncio.sleep(0.05)
        for run in self.runs.values():
            if run.pump is not None:
                run.pump.cancel()
