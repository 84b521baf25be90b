"""`RemoteRun`: a run another process trains, as a local producer to this process's channel.

It reads the run's Redis stream from its first retained entry and hands the steps and
events to its sink, mirroring state, tempo, step and summary from the status each event
carries. Controls go over Redis to the process that trains the run (named by the
stream's `begin` entry or the run's record), which answers with the run's status and the
stream id its effects reached; the control returns once this reader has got that far, so
a hello built after a control's answer already holds what it did (as for a local run).

A stream that has been trimmed (older than STREAM_MAXLEN entries) starts from `seed`:
the history before its first entry, from the shared store.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from app.broker import keys
from app.broker.codec import decode_block, end_entry, unpack
from app.broker.link import CONTROL_TIMEOUT, ERRORS, Broker
from app.live.handle import CONTROLS, ControlError, Sink, end_event, final_summary
from app.live.states import RunState

log = logging.getLogger("backbeat")

# a queued run is cancelled only if no worker has taken it (worker.py's CLAIM checks)
CANCEL = """
if redis.call('HGET', KEYS[1], 'trainer') ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'cancelled', '1')
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""
READ_COUNT = 500  # entries per XREAD
HEAD_ENTRIES = 20  # oldest entries looked at for the first step a stream holds
CATCH_UP_TIMEOUT = 5.0  # s a new viewer waits for a reader to reach the stream's end


def stream_id(entry_id: str | bytes | None) -> tuple[int, int]:
    if not entry_id:
        return (0, 0)
    ms, _, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).partition("-")
    return int(ms), int(seq or 0)


def first_step(entries: list) -> int:
    """The first step a stream's oldest entries hold: its first steps block or `begin`.

    A `begin` names the newest step already sent before it. Events first (a relisted stream
    whose backlog went out before its `begin`) say only that no step came earlier than theirs.
    """
    for _, fields in entries:
        if fields[b"k"] == b"steps":
            return int(decode_block(fields[b"d"])["step"][0])
        if fields[b"k"] == b"begin":
            return int(fields.get(b"step", 0)) + 1
    steps = [int(unpack(f[b"d"]).get("step") or 0) for _, f in entries if f[b"k"] == b"event"]
    return max(steps, default=0)


class RemoteRun:
    """A run trained elsewhere: its stream in, its controls out (the RunHandle protocol)."""

    controls = CONTROLS

    def __init__(
        self,
        run_id: str,
        broker: Broker,
        loop: asyncio.AbstractEventLoop,
        trainer: str | None = None,
        *,
        home: bool = False,
        start_paused: bool = False,
        steps_per_second: float | None = None,
        seed: Callable[[int], None] | None = None,
        controls: frozenset[str] = CONTROLS,
    ) -> None:
        self.run_id, self.broker, self.loop = run_id, broker, loop
        self.controls = controls  # an outside run's are its script's: pause, resume, stop
        self.trainer, self.home, self.seed = trainer or None, home, seed
        self.sink: Sink | None = None
        # a queued run is starting until its worker says otherwise
        self.state = RunState.PAUSED if start_paused and not home else RunState.RUNNING
        if home:
            self.state = RunState.STARTING
        self.steps_per_second = steps_per_second
        self.current_step = self.current_epoch = 0
        self.summary: dict = {}
        self.last_id: str | None = None
        self._last_step = 0  # the newest step handed to the sink
        self.caught_up = asyncio.Event()
        self._ended = False
        self._final_model: dict | None = None
        self._done = threading.Event()
        self._task: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        return not self._ended

    # -- reading ------------------------------------------------------------------------
    def start(self, sink: Sink) -> None:
        self.sink = sink
        self._soon(self._begin)

    def _soon(self, fn: Callable[[], None]) -> None:
        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            fn()
        else:
            self.loop.call_soon_threadsafe(fn)

    def _begin(self) -> None:
        self._task = self.loop.create_task(self._read(), name=f"remote-{self.run_id}")

    async def _read(self) -> None:
        key, last, target = keys.stream(self.run_id), "0-0", None
        try:
            while target is None:
                await self.broker.ready()
                try:
                    target = await self._head(key)
                except ERRORS as exc:
                    self.broker.failed(exc)
                    await asyncio.sleep(0.2)
            while not self._ended:
                await self.broker.ready()
                try:
                    got = await self.broker.redis.xread({key: last}, count=READ_COUNT, block=1000)
                except ERRORS as exc:
                    self.broker.failed(exc)
                    await asyncio.sleep(0.2)
                    continue
                for _, entries in got:
                    for entry_id, fields in entries:
                        last = self.last_id = entry_id.decode()
                        self._deliver(fields)
                        if self._ended:
                            break
                if not got or stream_id(last) >= target:
                    self.caught_up.set()
        except Exception:
            log.exception("run %s: reading its stream failed", self.run_id)
            raise
        finally:
            self.caught_up.set()
            self._done.set()

    async def _head(self, key: str) -> tuple[int, int]:
        """Seed what the stream no longer holds; the id of its newest entry (to catch up to)."""
        head = await self.broker.redis.xrange(key, "-", "+", count=HEAD_ENTRIES)
        tail = await self.broker.redis.xrevrange(key, "+", "-", count=1)
        first = first_step(head)
        if first > 1 and self.seed is not None:  # trimmed, or listed again after an outage
            await asyncio.to_thread(self.seed, first)
            self._last_step = first - 1
        return stream_id(tail[0][0]) if tail else (0, 0)

    def _deliver(self, fields: dict) -> None:
        kind = fields[b"k"]
        if kind == b"begin":
            self.trainer = fields[b"n"].decode()
        elif kind == b"steps":
            block = decode_block(fields[b"d"])
            last = int(block["step"][-1])
            if last <= self._last_step:
                return  # sent twice after a broker error
            self._last_step = last  # not current_step: a control's answer may be ahead of it
            self.current_step = max(self.current_step, last)
            self.current_epoch = int(block["epoch"][-1])
            self.sink.on_steps(self.run_id, block)
        elif kind == b"event":
            event = unpack(fields[b"d"])
            self._mirror(unpack(fields[b"s"]))
            if event["type"] == "end":
                self._final_model = unpack(fields.get(b"m", b"null"))
                self.state, self.summary = RunState(event["state"]), event["summary"]
                self._ended = True
            self.sink.on_event(self.run_id, event)

    async def _cancel(self) -> bool:
        """Stop a queued run: no worker will take it; its end goes into its stream."""
        try:
            if not await self.broker.redis.eval(
                CANCEL, 2, keys.run(self.run_id), keys.LIVE, self.run_id, keys.ENDED_TTL
            ):
                return False  # a worker took it just now
            end = end_event(RunState.STOPPED, 0, final_summary(None, RunState.STOPPED, 0, None))
            await self.broker.redis.xadd(keys.stream(self.run_id), end_entry(end))
            await self.broker.redis.expire(keys.stream(self.run_id), keys.ENDED_TTL)
        except ERRORS as exc:
            self.broker.failed(exc)
            raise ControlError("cannot stop: the broker is unreachable") from exc
        deadline = time.monotonic() + 2.0
        while not self._ended and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return True

    def _mirror(self, status: list | None) -> None:
        if not status or self._ended:
            return
        state, self.steps_per_second, step, epoch, self.summary = status
        self.state = RunState(state)
        self.current_step, self.current_epoch = max(self.current_step, step), epoch

    # -- controls (a worker thread) ------------------------------------------------------
    def pause(self) -> None:
        self._call("pause")

    def resume(self) -> None:
        self._call("resume")

    def step(self) -> dict:
        return self._call("step")

    def set_tempo(self, steps_per_second: float | None) -> None:
        self._call("tempo", steps_per_second)

    def set(self, changes: dict) -> dict:
        return self._call("set", changes)

    def stop(self) -> None:
        self._call("stop")

    def model(self) -> dict:
        if self._ended:
            if self._final_model is None:
                raise ControlError("the run ended without a model")
            return self._final_model
        return self._call("model")

    def halt(self, state: RunState = RunState.INTERRUPTED) -> None:
        """Stop reading; the run's home also asks its trainer to end it (it records no more)."""
        if self.home and self.trainer and self.alive:
            self.broker.tell(self.trainer, self.run_id, "halt", str(state))
        if self._task is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._task.cancel)
        else:
            self._done.set()

    def join(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def _call(self, action: str, arg=None):
        if not self.alive:
            raise ControlError(f"cannot {action}: the run is {self.state}")
        future = asyncio.run_coroutine_threadsafe(self._remote(action, arg), self.loop)
        try:
            return future.result(CONTROL_TIMEOUT + 5)
        except TimeoutError as exc:
            future.cancel()
            raise ControlError(f"{action} got no answer within {CONTROL_TIMEOUT:g} s") from exc

    async def _remote(self, action: str, arg):
        if self.trainer is None and action == "stop" and await self._cancel():
            return None
        if self.trainer is None:
            raise ControlError(f"cannot {action}: no worker has taken the run yet")
        answer = await self.broker.call(self.trainer, self.run_id, action, arg)
        if not answer["ok"]:
            raise ControlError(answer["result"])
        self._mirror(answer["status"])
        if answer["at"]:  # until this reader has seen what the control did
            deadline = time.monotonic() + 2.0
            while (
                stream_id(self.last_id) < stream_id(answer["at"])
                and not self._ended
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.005)
        return answer["result"]
