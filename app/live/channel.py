"""Thread → event-loop bridge and fan-out: each run's stream serialised once for all viewers."""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator

from app.engine.steps import StepBlock, concat_blocks
from app.live.audience import Detail, Frame
from app.live.direct import DirectSocket
from app.live.thinning import History
from app.live.wire import column, dumps, ws_text_frame

FRAME_INTERVAL = 1 / 60  # s: about 60 messages a second per run, however fast training goes
TICK_SLACK = 0.004  # s a tick may come early: a rest overshoots (epoll rests whole ms)
AUDIENCE_SHARE = 0.5  # of the time writing to the audience may take, about, before it slows
AUDIENCE_LONGEST = 1 / 20  # s: the longest an audience viewer waits between two writes
COST_SMOOTHING = 0.2  # weight of the newest audience write's duration in its running average
VIEWER_QUEUE = 240  # messages a viewer may lag (about 4 s of frames) before eviction
EVALS_PER_TICK = 4  # a tick with more evals than this sends only the newest (unpaced runs)
VIEWER_PATIENCE = 5.0  # s the oldest message may wait for a viewer before it is evicted
VIEWER_BACKLOG = 4 << 20  # bytes a directly written viewer may lag before eviction
RECENT_EVALS = 200  # evals (without grids) kept for a late joiner's charts
EVICTED = 4008  # websocket close code for a viewer that cannot keep up
DISCRETE_EVENTS = ("chime", "alarm", "overfit", "change", "plateau", "plateau_end")

log = logging.getLogger(__name__)


class Tick:
    """One tick's messages for one detail: serialised once, framed once, for every viewer."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self._framed: bytes | None = None

    @property
    def framed(self) -> bytes:
        if self._framed is None:
            self._framed = b"".join(ws_text_frame(t) for t in self.texts)
        return self._framed


class Viewer:
    """One websocket's outbox; a `None` in it means: close, you fell too far behind.

    A viewer is evicted when its oldest unsent message has waited VIEWER_PATIENCE, or when the
    queue overflows, whichever comes first, so a stalled client goes within seconds
    whatever the frame rate.

    Once its session `attach`es a `DirectSocket` (after the hello), the channel writes each
    tick's framed bytes straight to its transport instead. While the transport still
    buffers an earlier write (the kernel took no more), new ticks are not copied into it:
    the viewer keeps references to them (`behind`), shared with every other viewer that
    is behind, and they go out in one write at the first tick that finds its buffer
    empty. So ten stalled viewers hold one copy of the stream between them, not ten. A
    viewer whose buffer has not emptied for VIEWER_PATIENCE, or that is more than
    VIEWER_BACKLOG bytes behind, is evicted the same way, with a 4008 close frame.
    """

    def __init__(self, maxsize: int = VIEWER_QUEUE, detail: Detail = "audience") -> None:
        self.detail = detail  # which frames it gets: audience summaries or every step
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize)
        self.queued_at: deque[float] = deque()  # when each queued message was offered
        self.evicted = False
        self.dropped = asyncio.Event()  # set on eviction, even while a send is stuck
        self.direct: DirectSocket | None = None
        self.behind_since: float | None = None  # direct: since when its buffer never emptied
        self.behind: list[Tick] = []  # direct: ticks not yet written, while it was behind
        self.behind_bytes = 0

    def offer(self, text: str) -> bool:
        if self.evicted:
            return False
        now = time.monotonic()
        if self.queued_at and now - self.queued_at[0] > VIEWER_PATIENCE:
            return self._evict()
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            return self._evict()
        self.queued_at.append(now)
        return True

    def offer_tick(self, tick: Tick, now: float) -> bool:
        """A tick's messages: written at once to a direct socket, else queued one by one."""
        if self.direct is None:
            return all(self.offer(text) for text in tick.texts)
        if self.evicted:
            return False
        backlog = self.direct.backlog()
        if not backlog:
            self.behind_since = None
            if self.behind:  # caught up: what it missed and this tick, in one write
                ticks, self.behind, self.behind_bytes = [*self.behind, tick], [], 0
                self.direct.write(b"".join(t.framed for t in ticks))
            else:
                self.direct.write(tick.framed)
            return True
        if self.behind_since is None:
            self.behind_since = now
        elif now - self.behind_since > VIEWER_PATIENCE:
            return self._evict()
        self.behind.append(tick)
        self.behind_bytes += len(tick.framed)
        if backlog + self.behind_bytes > VIEWER_BACKLOG:
            return self._evict()
        return True

    def attach(self, direct: DirectSocket) -> None:
        """From now on write straight to `direct`; what is already queued goes first."""
        if self.evicted:
            return
        pending = []
        while not self.queue.empty():
            pending.append(self.queue.get_nowait())
        self.queued_at.clear()
        self.direct = direct
        if pending:
            self.direct.write(Tick(pending).framed)

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
        self.behind, self.behind_bytes = [], 0
        self.queue.put_nowait(None)
        if self.direct is not None:
            self.direct.close(EVICTED, "viewer too slow: evicted")
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
    """A run's stream: its producer pushes from any thread, the loop drains ≤60 Hz and fans out.

    It only fans out: a live run's `Recorder` stores each item before handing it on, and
    events arrive JSON-ready (non-finite numbers already None).

    `?detail=full` viewers get every tick. The audience gets every tick too while writing
    to all of it takes at most AUDIENCE_SHARE of a tick's interval; beyond that it is
    written to less often (down to once every AUDIENCE_LONGEST), each write carrying the
    held ticks' messages, unchanged and in order (`audience_interval`). A write per viewer
    costs ~10 µs of CPU, mostly the kernel's, so 1,000 viewers at 60 Hz would take most of
    a core; this holds the audience's share of the server's time near AUDIENCE_SHARE.
    """

    def __init__(
        self,
        run_id: str,
        n_layers: int,
        loop: asyncio.AbstractEventLoop,
        describe: Callable[[], dict],
    ) -> None:
        self.run_id, self.n_layers, self.loop = run_id, n_layers, loop
        self.describe = describe
        self.inbox: deque[tuple[str, object]] = deque()
        self.wake = asyncio.Event()
        self.poked = False
        self.batching = False  # the producer is inside `batch()`: it wakes the pump after
        self.seq = 0
        self.viewers: set[Viewer] = set()
        self.history = History(n_layers)
        self.evals: deque[dict] = deque(maxlen=RECENT_EVALS)
        self.last_eval: dict | None = None
        self.events: list[dict] = []
        self.latest: dict | None = None
        self.ended = False
        self.evictions = 0
        self.notice: dict | None = None  # a standing `notice` for hellos (a broker outage)
        self.held: list[str] = []  # audience messages serialised but not yet written
        self.audience_cost = 0.0  # s: running average of one write to the whole audience
        self.audience_written = -float("inf")  # monotonic time of the last audience write
        self._flush_timer: asyncio.TimerHandle | None = None

    # -- the producer's thread (a Sink) ------------------------------------------------
    def on_steps(self, run_id: str, block: StepBlock) -> None:
        self.inbox.append(("steps", block))
        self._poke()

    def on_event(self, run_id: str, event: dict) -> None:
        self.inbox.append(("event", event))
        self._poke()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Items handed over inside wake the pump once, after the last (producer's thread).

        Waking it costs the producer a write to the loop's self-pipe, which lets the loop
        take the GIL at once: it would drain the batch's first item and leave the rest,
        and its evals' wake-up would set the pump's next tick off the batches' beat."""
        self.batching = True
        try:
            yield
        finally:
            self.batching = False
            if self.inbox:
                self._poke()

    def _poke(self) -> None:
        if not self.poked and not self.batching:
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
            self._fan_out(self._drain())
            await asyncio.sleep(max(0.0, self._next_tick(began) - time.monotonic()))

    def _next_tick(self, began: float) -> float:
        """When the pump may tick again after a tick that began at `began`.

        A frame interval later, less TICK_SLACK: so the rest ends before a producer that
        hands over 60 times a second (a child: HANDOFF_INTERVAL) hands over again, and the
        tick follows that hand-over at once. Resting a whole interval, a rest's overshoot
        made the ticks drift behind the hand-overs until each batch waited up to a tick
        (~8 ms on average). A producer that hands over without pause gets ≤79 ticks a
        second.

        But while only the audience watches and its writes are spaced: when its next write
        is due, so that the write carries every step handed over until then, not only
        those of the tick before it."""
        after_frame = began + FRAME_INTERVAL - TICK_SLACK
        if self.audience_interval <= FRAME_INTERVAL or any(
            v.detail == "full" for v in self.viewers
        ):
            return after_frame
        return max(after_frame, self.audience_written + self._audience_wait())

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
            frame = Frame(block)
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

    def _broadcast(self, message: dict | Frame) -> None:
        self._fan_out([message])

    def _fan_out(self, messages: list[dict | Frame], flush: bool = False) -> None:
        """A tick's messages to every viewer: serialised and framed once per detail watched.

        Full viewers get them now; the audience gets them now or with the next write
        `audience_interval` allows (`flush`: now, whatever the interval)."""
        first = self.seq + 1
        self.seq += len(messages)
        if not self.viewers:  # serialising costs training time: only if watched
            self.held.clear()
            return
        now = time.monotonic()
        if messages:
            full = [v for v in self.viewers if v.detail == "full"]
            if full:
                self._write(full, Tick(self._texts(messages, "full", first)), now)
            if len(full) < len(self.viewers):
                self.held.extend(self._texts(messages, "audience", first))
        if not self.held:
            return
        if flush or self.ended or now >= self.audience_written + self._audience_wait():
            self._write_audience(now)
        elif self._flush_timer is None:  # nothing may come for a while: write then anyway
            wait = self.audience_written + self._audience_wait() - now
            self._flush_timer = self.loop.call_later(wait, self._flush_due)

    def _texts(self, messages: list[dict | Frame], detail: Detail, first: int) -> list[str]:
        return [dumps({**self._body(m, detail), "seq": first + i}) for i, m in enumerate(messages)]

    @property
    def audience_interval(self) -> float:
        """The time between two audience writes: one tick's, unless the audience costs more.

        Writing to every audience viewer takes `audience_cost`; the interval keeps that
        within AUDIENCE_SHARE of it, between FRAME_INTERVAL and AUDIENCE_LONGEST."""
        return min(max(FRAME_INTERVAL, self.audience_cost / AUDIENCE_SHARE), AUDIENCE_LONGEST)

    def _audience_wait(self) -> float:
        """How long after the last audience write the next is due: none at the tick rate,
        else the interval less half a tick, so a write goes with the tick nearest to it."""
        interval = self.audience_interval
        return 0.0 if interval <= FRAME_INTERVAL else interval - FRAME_INTERVAL / 2

    def _flush_due(self) -> None:
        self._flush_timer = None
        if self.held:
            self._write_audience(time.monotonic())

    def _write_audience(self, now: float) -> None:
        tick, self.held = Tick(self.held), []
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        began = time.perf_counter()
        self._write([v for v in self.viewers if v.detail == "audience"], tick, now)
        took = time.perf_counter() - began
        self.audience_cost += COST_SMOOTHING * (took - self.audience_cost)
        self.audience_written = now

    def _write(self, viewers: list[Viewer], tick: Tick, now: float) -> None:
        for viewer in viewers:
            if not viewer.offer_tick(tick, now):
                self.viewers.discard(viewer)
                self.evictions += 1

    @staticmethod
    def _body(message: dict | Frame, detail: Detail) -> dict:
        return message.message(detail) if isinstance(message, Frame) else message

    def hello(self) -> dict:
        hello = hello_message(
            self.describe(),
            self.history.columns(),
            list(self.evals),
            self.last_eval,
            list(self.events),
            self.seq,
        )
        if self.notice is not None:
            hello["notice"] = self.notice
        return hello

    @contextlib.contextmanager
    def subscribe(
        self, detail: Detail = "audience", **hello_overrides
    ) -> Iterator[tuple[Viewer, str]]:
        """Register a viewer and build its hello in the same tick, so nothing falls between.

        What the producer has handed over but the pump has not yet sent goes out first, so
        a hello built right after a control's answer already holds what that control did."""
        self._fan_out(self._drain(), flush=True)  # held messages go to those who had them
        viewer = Viewer(detail=detail)
        self.viewers.add(viewer)
        try:
            yield viewer, dumps({**self.hello(), "detail": detail, **hello_overrides})
        finally:
            self.viewers.discard(viewer)
