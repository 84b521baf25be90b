"""Thread → event-loop bridge and fan-out: each run's stream serialised once for all viewers."""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator

from app.history import History
from app.steps import StepBlock, concat_blocks
from app.wire import block_columns, clean, column, dumps

FRAME_INTERVAL = 1 / 60  # s: at most ~60 messages a second per run, however fast training goes
VIEWER_QUEUE = 240  # messages a viewer may lag (about 4 s of frames) before eviction
EVALS_PER_TICK = 4  # a tick with more evals than this sends only the newest (unpaced runs)
MAX_LAG = 5.0  # s the oldest message may wait for a viewer before it is evicted
RECENT_EVALS = 200  # evals (without grids) kept for a late joiner's charts
EVICTED = 4008  # websocket close code for a viewer that cannot keep up
DISCRETE_EVENTS = ("chime", "alarm", "overfit")

log = logging.getLogger(__name__)


class Viewer:
    """One websocket's outbox; a `None` in it means: close, you fell too far behind.

    A viewer is evicted when its oldest unsent message has waited MAX_LAG, or when the
    queue overflows, whichever comes first, so a stalled client goes within seconds
    whatever the frame rate.
    """

    def __init__(self, maxsize: int = VIEWER_QUEUE) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize)
        self.queued_at: deque[float] = deque()  # when each queued message was offered
        self.evicted = False
        self.dropped = asyncio.Event()  # set on eviction, even while a send is stuck

    def offer(self, text: str) -> bool:
        if self.evicted:
            return False
        now = time.monotonic()
        if self.queued_at and now - self.queued_at[0] > MAX_LAG:
            return self._evict()
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            return self._evict()
        self.queued_at.append(now)
        return True

    async def take(self) -> str | None:
        text = await self.queue.get()
        if self.queued_at:
            self.queued_at.popleft()
        return text

    def _evict(self) -> bool:
        self.evicted = True
        self.dropped.set()
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queued_at.clear()
        self.queue.put_nowait(None)
        return False


def hello_message(
    run: dict, history: StepBlock, evals: list, last_eval: dict | None, events: list, seq: int
) -> dict:
    """The first message of every stream: the run, its thinned history and what happened."""
    return {
        "type": "hello",
        "run": run,
        "history": {k: column(k, v) for k, v in history.items()},
        "evals": evals,
        "last_eval": last_eval,
        "events": events,
        "replay": False,
        "server_time": time.time(),
        "seq": seq,
    }


class Channel:
    """A live run's stream: the training thread pushes, the loop drains ≤60 Hz and fans out."""

    def __init__(
        self,
        run_id: str,
        n_layers: int,
        loop: asyncio.AbstractEventLoop,
        describe: Callable[[], dict],
        persist_steps: Callable[[StepBlock], None],
        persist_event: Callable[[dict], None],
    ) -> None:
        self.run_id, self.n_layers, self.loop = run_id, n_layers, loop
        self.describe, self.persist_steps, self.persist_event = (
            describe,
            persist_steps,
            persist_event,
        )
        self.inbox: deque[tuple[str, object]] = deque()
        self.wake = asyncio.Event()
        self.poked = False
        self.seq = 0
        self.viewers: set[Viewer] = set()
        self.history = History(n_layers)
        self.evals: deque[dict] = deque(maxlen=RECENT_EVALS)
        self.last_eval: dict | None = None
        self.events: list[dict] = []
        self.latest: dict | None = None
        self.ended = False
        self.evictions = 0

    # -- training thread (the Runner's sink) --------------------------------------------
    # Persisting here, before the run can report its next state, means a client that sees
    # `finished` (or a step's answer) already finds those steps in the history.
    def on_steps(self, run_id: str, block: StepBlock) -> None:
        self._persist(self.persist_steps, block)
        self.inbox.append(("steps", block))
        self._poke()

    def on_event(self, run_id: str, event: dict) -> None:
        event = clean(event)
        self._persist(self.persist_event, event)
        self.inbox.append(("event", event))
        self._poke()

    def _persist(self, write: Callable, item) -> None:
        """A history write that fails is logged; it must not end training or the stream."""
        try:
            write(item)
        except Exception:
            log.exception("run %s: could not record %s", self.run_id, type(item).__name__)

    def _poke(self) -> None:
        if not self.poked:
            self.poked = True
            with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                self.loop.call_soon_threadsafe(self.wake.set)

    # -- event loop ---------------------------------------------------------------------
    async def pump(self) -> None:
        """Drain, serialise once, fan out; then rest so frames stay ≤60 a second."""
        while not self.ended:
            await self.wake.wait()
            began = time.monotonic()
            self.wake.clear()
            self.poked = False
            for message in self._drain():
                self._broadcast(message)
            await asyncio.sleep(max(0.0, FRAME_INTERVAL - (time.monotonic() - began)))

    def _drain(self) -> list[dict]:
        blocks, evals, others = [], [], []
        while self.inbox:
            kind, item = self.inbox.popleft()
            if kind == "steps":
                blocks.append(item)
            elif item["type"] == "eval":
                evals.append(item)
            else:
                others.append(item)
        messages = []
        if blocks:
            block = concat_blocks(blocks, self.n_layers)
            self.history.add(block)
            frame = {"type": "frame", **block_columns(block)}
            self.latest = {
                "step": int(block["step"][-1]),
                **{k: float(block[k][-1]) for k in ("loss", "accuracy", "entropy", "crescendo")},
            }
            messages.append(frame)
        if evals:
            messages.extend(self._remember_evals(evals))
        for event in others:
            if event["type"] in DISCRETE_EVENTS:
                self.events.append(event)
            self.ended = self.ended or event["type"] == "end"
            messages.append(event)
        return messages

    def _remember_evals(self, evals: list[dict]) -> list[dict]:
        """A tick's evals to send: all of a few, else the newest; only the newest has a grid."""
        newest = dict(evals[-1])
        if newest.get("grid") is None:
            grids = [e["grid"] for e in evals if e.get("grid") is not None]
            if grids:
                newest["grid"] = grids[-1]
        for e in evals:
            self.evals.append({k: v for k, v in e.items() if k != "grid"})
        if newest.get("grid") is not None or self.last_eval is None:
            self.last_eval = newest
        else:
            self.last_eval = {**newest, "grid": self.last_eval.get("grid")}
        if len(evals) > EVALS_PER_TICK:
            return [newest]
        return [{**e, "grid": None} for e in evals[:-1]] + [newest]

    def _broadcast(self, message: dict) -> None:
        self.seq += 1
        if not self.viewers:  # serialising every step costs training time: only for an audience
            return
        text = dumps({**message, "seq": self.seq})
        for viewer in list(self.viewers):
            if not viewer.offer(text):
                self.viewers.discard(viewer)
                self.evictions += 1

    def hello(self) -> dict:
        return hello_message(
            self.describe(),
            self.history.columns(),
            list(self.evals),
            self.last_eval,
            list(self.events),
            self.seq,
        )

    @contextlib.contextmanager
    def subscribe(self, **hello_overrides) -> Iterator[tuple[Viewer, str]]:
        """Register a viewer and build its hello in the same tick, so nothing falls between."""
        viewer = Viewer()
        self.viewers.add(viewer)
        try:
            yield viewer, dumps({**self.hello(), **hello_overrides})
        finally:
            self.viewers.discard(viewer)
