"""The run manager: creates runs, caps how many train at once, wires each to stream and store."""

import asyncio
import contextlib
import secrets
import time

from app.engine.config import RunConfig
from app.engine.tables import Table
from app.live.channel import Channel
from app.live.external import ExternalRun, OutsideShape
from app.live.handle import RunHandle, Sink, control
from app.live.handles import ProcessRun
from app.live.ingest import MAX_OUTSIDE_RUNS, OutsideRunSpec
from app.live.recorder import Recorder
from app.store import RunStore


class TooManyRuns(RuntimeError):
    """More live runs than the server trains at once."""


class LiveRun:
    """A run this server is streaming: its handle (where steps come from) and its channel."""

    def __init__(
        self,
        run_id: str,
        config: RunConfig | OutsideShape,
        handle: RunHandle,
        loop: asyncio.AbstractEventLoop,
        created: float,
    ) -> None:
        self.id, self.config, self.handle, self.created = run_id, config, handle, created
        self.channel = Channel(run_id, len(config.layers) - 1, loop, describe=self.describe)
        self.pump: asyncio.Task | None = None

    @property
    def outside(self) -> bool:
        """Trained by a script elsewhere: steps arrive through ingest."""
        return isinstance(self.handle, ExternalRun)

    def describe(self) -> dict:
        return {
            "id": self.id,
            "state": self.handle.state,
            "step": self.handle.current_step,
            "epoch": self.handle.current_epoch,
            **self.config.describe(),
            "steps_per_second": self.handle.steps_per_second,
            "created": self.created,
        }


class RunManager:
    """Owns the live runs; everything it does on the event loop is quick."""

    def __init__(self, store: RunStore, max_concurrent: int = 2) -> None:
        self.store, self.max_concurrent = store, max_concurrent
        self.runs: dict[str, LiveRun] = {}
        self.outside_keys: dict[str, str] = {}  # client_key → run id: a retried create, same run

    def live_count(self, outside: bool = False) -> int:
        """Live runs this server trains (or, with `outside`, that scripts elsewhere train)."""
        return sum(1 for r in self.runs.values() if r.handle.alive and r.outside == outside)

    async def create(self, config: RunConfig, table: Table | None = None) -> LiveRun:
        """Start a run; an uploaded or drawn set's rows (`table`) travel with the job."""
        if self.live_count() >= self.max_concurrent:
            raise TooManyRuns(
                f"{self.max_concurrent} runs are already training; stop one first "
                f"(the limit is {self.max_concurrent} at once)"
            )
        run_id = secrets.token_hex(6)  # from here to the registration nothing awaits
        handle = self.new_handle(run_id, config, table)
        run = LiveRun(run_id, config, handle, asyncio.get_running_loop(), time.time())
        self.store.create_run(run_id, config.model_dump(), config.layers, run.created)
        self.runs[run_id] = run
        run.pump = asyncio.create_task(run.channel.pump(), name=f"pump-{run_id}")
        try:
            await self.announce(run, table)
            await asyncio.to_thread(handle.start, Recorder(self.store, self.outlet(run), handle))
        except BaseException:
            self.runs.pop(run_id, None)
            run.pump.cancel()
            raise
        return run

    # -- hooks for a manager that spans processes (app/broker/manager.py) -----------------
    def new_handle(self, run_id: str, config: RunConfig, table: Table | None) -> RunHandle:
        """What trains a new run: a child process of this server."""
        return ProcessRun(run_id, config, table)

    async def announce(self, run: LiveRun, table: Table | None) -> None:
        """Tell other processes about a new run (nothing to tell on one process)."""

    def outlet(self, run: LiveRun) -> Sink:
        """Where a run's recorded messages go: its channel."""
        return run.channel

    async def watch(self, run_id: str) -> LiveRun | None:
        """A live run to stream to a new viewer, ready for its hello."""
        return self.get(run_id)

    async def fed_elsewhere(self, run_id: str) -> str | None:
        """Which other process takes a live outside run's steps (None: this one, or none).

        On one process there is no other; app/broker/manager.py names the run's home."""
        return None

    async def create_outside(self, spec: OutsideRunSpec) -> LiveRun:
        """A run whose steps a script elsewhere sends; it takes no training slot.

        A retried create (same `client_key`) gets the live run the first one made.
        """
        again = self.runs.get(self.outside_keys.get(spec.client_key or ""))
        if again is not None and again.handle.alive:
            return again
        if self.live_count(outside=True) >= MAX_OUTSIDE_RUNS:
            raise TooManyRuns(
                f"{MAX_OUTSIDE_RUNS} outside runs are already live; finish one first "
                f"(the limit is {MAX_OUTSIDE_RUNS} at once)"
            )
        run_id, shape = secrets.token_hex(6), OutsideShape(spec)
        handle = ExternalRun(run_id, spec)
        run = LiveRun(run_id, shape, handle, asyncio.get_running_loop(), time.time())
        self.store.create_run(run_id, shape.model_dump(), shape.layers, run.created)
        self.runs[run_id] = run
        if spec.client_key:  # keys of runs that ended are forgotten: only a live run is reused
            alive = {i for i, r in self.runs.items() if r.handle.alive}
            self.outside_keys = {k: v for k, v in self.outside_keys.items() if v in alive}
            self.outside_keys[spec.client_key] = run_id
        run.pump = asyncio.create_task(run.channel.pump(), name=f"pump-{run_id}")
        handle.start(Recorder(self.store, self.outlet(run), handle))
        return run

    def get(self, run_id: str) -> LiveRun | None:
        return self.runs.get(run_id)

    def checkpoint(self) -> None:
        """Record live runs' progress so the listing and a crash both see a recent step."""
        for run in self.runs.values():
            if run.handle.state.live:
                self.store.set_state(run.id, run.handle.state, step=run.handle.current_step)

    async def delete(self, run_id: str) -> None:
        run = self.runs.pop(run_id, None)
        if run is not None:
            if run.handle.alive:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(control, run.handle, "stop")
            if run.pump is not None:
                run.pump.cancel()

    async def shutdown(self, timeout: float = 2.0) -> None:
        """Stop every producer (each within the timeout) and let the pumps drain."""
        live = [r for r in self.runs.values() if r.handle.alive]
        for run in live:
            run.handle.halt()
        await asyncio.to_thread(lambda: [r.handle.join(timeout) for r in live])
        await asyncio.sleep(0.05)
        for run in self.runs.values():
            if run.pump is not None:
                run.pump.cancel()
