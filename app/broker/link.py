"""One process's link to Redis: up or down, reconnect with backoff, heartbeat, controls.

Every process (web or worker) has a random node id. While the link is up it renews
`backbeat:node:<id>` every BEAT_INTERVAL (it lapses after BEAT_TTL), and it answers the
control requests other processes push to `backbeat:ctl:<id>` for the runs it trains.
A Redis error anywhere marks the link down: the tasks wait for it, the heartbeat task
reconnects with backoff, and listeners (the page's notice) hear each change. A heartbeat
that finds its own key gone (Redis restarted between two beats, within redis-py's retries,
so nothing failed here) tells `resets`: what this process listed must be written again.
"""

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.broker import keys
from app.broker.codec import pack, unpack
from app.live.handle import ControlError, RunHandle, control

log = logging.getLogger("backbeat")

ERRORS = (RedisError, OSError)  # what a lost or refusing broker raises
CONTROL_TIMEOUT = 10.0  # s a control may take on the process that trains the run
BACKOFF_MIN, BACKOFF_MAX = 0.1, 5.0  # s between reconnection attempts (doubling, jittered)
REPLY_TTL = 30  # s an unread answer stays in Redis

Owned = Callable[[str], tuple[RunHandle, Callable[[], Awaitable[str | None]]] | None]


def status_of(handle: RunHandle) -> list:
    """What other processes mirror of a run: state, tempo, step, epoch, summary."""
    return [
        str(handle.state),
        handle.steps_per_second,
        handle.current_step,
        handle.current_epoch,
        dict(handle.summary),
    ]


def apply(handle: RunHandle, action: str, arg):
    """Carry out a control request (the same as ProcessRun's child does)."""
    if action == "model":
        return handle.model()
    if action == "halt":
        return handle.halt(arg)
    if action == "tempo":
        return control(handle, action, steps_per_second=arg)
    return control(handle, action, changes=arg)


class Broker:
    """The Redis client, the link's state and this process's node id."""

    def __init__(self, url: str, role: str = "web") -> None:
        self.url, self.role, self.node = url, role, secrets.token_hex(4)
        self.redis = aioredis.from_url(
            url, socket_timeout=CONTROL_TIMEOUT + 5, socket_connect_timeout=2.0
        )
        self.up = False
        self.up_since = 0.0  # monotonic time the link last came up
        self.settle = keys.BEAT_TTL + keys.BEAT_INTERVAL  # s up before judging who is dead
        self.listeners: list[Callable[[bool, str], None]] = []
        self.resets: list[Callable[[], None]] = []  # Redis lost what this process wrote
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._owned: Owned = lambda run_id: None
        self._told: set[asyncio.Task] = set()  # controls sent without waiting (tell)
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self, owned: Owned) -> None:
        """Begin beating and answering controls for the runs `owned(run_id)` finds here."""
        self._owned = owned
        self.loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._beat(), name="broker-beat"),
            asyncio.create_task(self._serve(), name="broker-controls"),
        ]

    async def close(self) -> None:
        await asyncio.sleep(0)  # let controls told just now be scheduled
        if self._told:
            await asyncio.wait(set(self._told), timeout=1.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(*ERRORS):
            if self.up:
                await self.redis.delete(keys.node(self.node))
        with contextlib.suppress(*ERRORS):
            await self.redis.aclose()

    async def ready(self) -> None:
        await self._ready.wait()

    def failed(self, exc: BaseException) -> None:
        """Any task that meets a Redis error says so; the heartbeat task reconnects."""
        if self.up:
            self.up = False
            self._ready.clear()
            log.warning("broker %s unreachable (%s); serving locally, reconnecting", self.url, exc)
            self._tell(False, f"the broker is unreachable: {exc}")

    def _lost(self) -> None:
        for reset in self.resets:
            try:
                reset()
            except Exception:
                log.exception("broker reset listener failed")

    def _tell(self, up: bool, detail: str) -> None:
        for listener in self.listeners:
            try:
                listener(up, detail)
            except Exception:
                log.exception("broker listener failed")

    async def _beat(self) -> None:
        delay = BACKOFF_MIN
        while True:
            try:
                if not self.up:  # idle connections to a server that died fail once each: drop them
                    await self.redis.connection_pool.disconnect(inuse_connections=False)
                beat = {"px": int(keys.BEAT_TTL * 1000), "get": True}
                previous = await self.redis.set(keys.node(self.node), self.role, **beat)
            except ERRORS as exc:
                self.failed(exc)
                await asyncio.sleep(delay * random.uniform(0.75, 1.25))
                delay = min(BACKOFF_MAX, delay * 2)
                continue
            delay = BACKOFF_MIN
            if not self.up:
                # after an outage every process reconnects on its own backoff: wait for theirs
                self.settle = keys.BEAT_TTL + keys.BEAT_INTERVAL
                if self.up_since:
                    self.settle += BACKOFF_MAX * 1.25
                self.up, self.up_since = True, time.monotonic()
                self._ready.set()
                log.info("broker %s connected (node %s)", self.url, self.node)
                self._tell(True, "the broker is reachable")
            elif previous is None:  # restarted or flushed between two beats: nothing failed here
                log.warning("broker %s lost this process's keys; listing its runs again", self.url)
                self._lost()
            await asyncio.sleep(keys.BEAT_INTERVAL)

    def settled(self) -> bool:
        """Up long enough that every live process has beaten since (safe to judge the dead)."""
        return self.up and time.monotonic() - self.up_since > self.settle

    async def alive(self, node: str) -> bool:
        return bool(await self.redis.exists(keys.node(node)))

    # -- controls ------------------------------------------------------------------
    async def call(self, node: str, run_id: str, action: str, arg=None) -> dict:
        """Ask the process `node` to apply a control to a run it trains; its answer."""
        if not self.up:
            raise ControlError(f"cannot {action}: the broker is unreachable")
        call_id = secrets.token_hex(8)
        request = {"id": call_id, "run": run_id, "action": action, "arg": arg}
        try:
            await self.redis.rpush(keys.inbox(node), pack(request))
            await self.redis.expire(keys.inbox(node), REPLY_TTL)
            got = await self.redis.blpop([keys.reply(call_id)], timeout=CONTROL_TIMEOUT)
        except ERRORS as exc:
            self.failed(exc)
            raise ControlError(f"cannot {action}: the broker is unreachable") from exc
        if got is None:
            raise ControlError(f"{action} got no answer within {CONTROL_TIMEOUT:g} s")
        return unpack(got[1])

    def tell(self, node: str, run_id: str, action: str, arg=None) -> None:
        """Send a control without waiting for its answer (any thread; close() awaits it)."""

        async def send() -> None:
            request = {"id": secrets.token_hex(8), "run": run_id, "action": action, "arg": arg}
            try:
                await self.redis.rpush(keys.inbox(node), pack(request))
                await self.redis.expire(keys.inbox(node), REPLY_TTL)
            except ERRORS as exc:
                self.failed(exc)

        def schedule() -> None:
            task = asyncio.get_running_loop().create_task(send())
            self._told.add(task)
            task.add_done_callback(self._told.discard)

        with contextlib.suppress(RuntimeError):  # the loop has closed
            self.loop.call_soon_threadsafe(schedule)

    async def _serve(self) -> None:
        while True:
            await self.ready()
            try:
                got = await self.redis.blpop([keys.inbox(self.node)], timeout=1)
            except ERRORS as exc:
                self.failed(exc)
                await asyncio.sleep(BACKOFF_MIN)
                continue
            if got is not None:
                asyncio.create_task(self._answer(unpack(got[1])))

    async def _answer(self, request: dict) -> None:
        owned = self._owned(request["run"])
        at, status = None, None
        try:
            if owned is None:
                raise ControlError("the run is no longer trained by this process")
            handle, flushed = owned
            result = await asyncio.to_thread(apply, handle, request["action"], request["arg"])
            ok = True
        except ControlError as exc:
            result, ok = str(exc), False
        if owned is not None:
            handle, flushed = owned
            at, status = await flushed(), status_of(handle)
        answer = {"ok": ok, "result": result, "status": status, "at": at}
        try:
            await self.redis.rpush(keys.reply(request["id"]), pack(answer))
            await self.redis.expire(keys.reply(request["id"]), REPLY_TTL)
        except ERRORS as exc:
            self.failed(exc)
