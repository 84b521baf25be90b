"""The owner's side: each message of a run it trains goes once into the run's Redis stream.

`Publisher` is a sink (any thread): it encodes each step block and event at once and a
task on the event loop XADDs them in order, pipelined, capped at STREAM_MAXLEN. While the
broker is down it keeps up to OUTAGE_BACKLOG entries (the oldest go first) and sends them
when the link is back; local viewers never wait for it (`Tee` feeds them first).
"""

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterator

from app.broker import keys
from app.broker.codec import encode_block, pack
from app.broker.link import ERRORS, Broker, status_of
from app.engine.steps import StepBlock
from app.live.handle import ControlError, RunHandle, Sink, batched

log = logging.getLogger("backbeat")

OUTAGE_BACKLOG = 20_000  # entries kept while the broker is down (minutes of an unpaced run)
BATCH = 256  # entries per pipelined round trip


class Tee:
    """One sink in, several out: the local channel first, then the publisher."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for sink in self.sinks:
                stack.enter_context(batched(sink))
            yield

    def on_steps(self, run_id: str, block: StepBlock) -> None:
        for sink in self.sinks:
            sink.on_steps(run_id, block)

    def on_event(self, run_id: str, event: dict) -> None:
        for sink in self.sinks:
            sink.on_event(run_id, event)


class Publisher:
    """A run's stream writer; `record` (if any) is the run's record, written first."""

    def __init__(
        self,
        broker: Broker,
        run_id: str,
        handle: RunHandle,
        loop: asyncio.AbstractEventLoop,
        record: dict | None = None,
    ) -> None:
        self.broker, self.run_id, self.handle, self.loop = broker, run_id, handle, loop
        self.record = record
        self.key = keys.stream(run_id)
        self.items: deque[tuple[int, dict]] = deque()  # (last step it carries, fields)
        self.sent_step = 0  # the newest step in the stream: a relisting begins after it
        self.wake = asyncio.Event()
        self.last_id: str | None = None
        self.sending = False
        self.dropped = 0
        self.done = asyncio.Event()  # set once `end` is in the stream and the run delisted
        self.relist = False  # set when the broker comes back (it may have lost the listing)
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = self.loop.create_task(self._send_forever(), name=f"publish-{self.run_id}")

    # -- the producer's thread -----------------------------------------------------------
    def on_steps(self, run_id: str, block: StepBlock) -> None:
        self._push(int(block["step"][-1]), {"k": "steps", "d": encode_block(block)})

    def on_event(self, run_id: str, event: dict) -> None:
        fields = {"k": "event", "d": pack(event), "s": pack(status_of(self.handle))}
        if event["type"] == "end":
            fields["end"] = b"1"
            try:
                fields["m"] = pack(self.handle.model())
            except ControlError:  # a crashed run has no model to give
                fields["m"] = pack(None)
        self._push(0, fields)

    def _push(self, step: int, fields: dict) -> None:
        self.items.append((step, fields))
        while len(self.items) > OUTAGE_BACKLOG:
            self.items.popleft()
            self.dropped += 1
        with contextlib.suppress(RuntimeError):  # loop closed at shutdown
            self.loop.call_soon_threadsafe(self.wake.set)

    # -- the event loop --------------------------------------------------------------------
    async def _send_forever(self) -> None:
        await self._begin()
        ended = False
        while not ended:
            await self.wake.wait()
            self.wake.clear()
            while self.items or self.relist:
                await self.broker.ready()
                if self.relist:  # before the next batch, however long the backlog keeps coming
                    self.relist = False
                    await self._begin()
                    continue
                batch = list(itertools.islice(self.items, BATCH))
                self.sending = True
                try:
                    pipe = self.broker.redis.pipeline(transaction=False)
                    for _, fields in batch:
                        pipe.xadd(self.key, fields, maxlen=keys.STREAM_MAXLEN, approximate=True)
                    ids = await pipe.execute()
                except ERRORS as exc:
                    self.broker.failed(exc)
                    await asyncio.sleep(0.2)
                    continue
                finally:
                    self.sending = False
                for _ in batch:
                    self.items.popleft()
                self.last_id = ids[-1].decode()
                self.sent_step = max(self.sent_step, *(step for step, _ in batch))
                ended = ended or any("end" in fields for _, fields in batch)
        await self._delist()
        self.done.set()

    async def _begin(self) -> None:
        """The run's record (for a run trained here), then `begin` naming this process."""
        while True:
            await self.broker.ready()
            try:
                pipe = self.broker.redis.pipeline(transaction=True)
                if self.record is not None:
                    pipe.hset(keys.run(self.run_id), mapping=self.record)
                    pipe.sadd(keys.LIVE, self.run_id)
                # what came before is in the store (a late joiner seeds it from there)
                begin = {"k": "begin", "n": self.broker.node, "step": self.sent_step}
                pipe.xadd(self.key, begin)
                await pipe.execute()
                return
            except ERRORS as exc:
                self.broker.failed(exc)
                await asyncio.sleep(0.2)

    async def _delist(self) -> None:
        if self.dropped:
            log.warning(
                "run %s: %d messages lost while the broker was down", self.run_id, self.dropped
            )
        while True:
            await self.broker.ready()
            try:
                pipe = self.broker.redis.pipeline(transaction=True)
                pipe.srem(keys.LIVE, self.run_id)
                pipe.expire(self.key, keys.ENDED_TTL)
                pipe.expire(keys.run(self.run_id), keys.ENDED_TTL)
                await pipe.execute()
                return
            except ERRORS as exc:
                self.broker.failed(exc)
                await asyncio.sleep(0.2)

    def listed_again(self) -> None:
        """The broker is back (or lost our keys): list the run again before the next message.

        A relisting is the next thing sent, never after the backlog: while steps keep coming,
        the backlog may never run dry, and a run missing from `backbeat:live` is one that
        other processes serve as a stored replay (loop thread)."""
        self.relist = True
        self.wake.set()

    async def flushed(self, timeout: float = 2.0) -> str | None:
        """Once everything handed over so far is in the stream: the id of its last entry."""
        deadline = time.monotonic() + timeout
        while (self.items or self.sending) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return self.last_id
