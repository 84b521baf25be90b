"""The websocket: a run's live stream (hello, then frames and events), or its replay.

Clients may send small JSON messages: `{"type": "pong"}` answers the server's pings, and
`{"type": "control", "action": ..., "steps_per_second": ...}` controls a live run
(presenters only). Every message counts as a sign of life.
"""

import asyncio
import contextlib
import json
import logging
import time

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from app.engine.steps import finite
from app.live.audience import Detail
from app.live.channel import EVICTED, Channel, Viewer
from app.live.direct import DirectSocket
from app.live.handle import ControlError
from app.live.replay import REPLAYING, play, seed_earlier, stored_description, stored_hello
from app.live.wire import dumps
from app.web.refusals import located
from app.web.routes.runs import apply_control, read_control
from app.web.security import RateLimit, offered_token, origin_allowed

log = logging.getLogger("backbeat")
router = APIRouter()

UNKNOWN_RUN = 4004  # close code: no such run
FORBIDDEN_ORIGIN = 4003  # close code: cross-site handshake refused
TRY_LATER = 1013  # close code: connection caps reached
TOO_BIG = 1009  # close code: a client message over the size limit
POLICY = 1008  # close code: a client flooding messages
HEARTBEAT_LOST = 4010  # close code: no sign of life within the heartbeat timeout
INTERNAL = 1011  # close code: the session failed on the server's side
CLOSE_TIMEOUT = 2.0  # s allowed for any close handshake


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await ws.close(code, reason)


class Session:
    """One websocket's role, limits and liveness."""

    def __init__(self, ws: WebSocket, presenter: bool, direct: DirectSocket | None = None) -> None:
        settings = ws.app.state.settings
        self.ws, self.presenter, self.settings = ws, presenter, settings
        self.direct = direct  # set when frames may be written to the socket directly
        self.rate = RateLimit(settings.message_rate, int(2 * settings.message_rate))
        self.last_heard = time.monotonic()
        self.closing: tuple[int, str] | None = None
        self.sending_since: float | None = None  # set while a streamed message is being sent

    async def stream(self, text: str) -> None:
        """Send one streamed message; the heartbeat evicts a send stuck past the timeout.

        A timeout per send would arm and cancel a timer for every viewer on every frame,
        a large share of the event loop's time with hundreds of viewers.
        """
        self.sending_since = time.monotonic()
        await self.ws.send_text(text)
        self.sending_since = None

    async def send(self, text: str) -> bool:
        """Send, unless the client has read nothing for the heartbeat timeout (then evict)."""
        try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            async with asyncio.timeout(self.settings.heartbeat_timeout):
                await self.ws.send_text(text)
            return True
        except TimeoutError:
            self.closing = (EVICTED, "viewer too slow: evicted")
            return False

    async def send_queue(self, viewer: Viewer) -> None:
        while True:
            text = await viewer.take()
            if text is None:
                self.closing = (EVICTED, "viewer too slow: evicted")
                return
            await self.stream(text)

    async def evicted(self, viewer: Viewer) -> None:
        """A viewer that stops reading blocks its own send; the hub's eviction still ends it."""
        await viewer.dropped.wait()
        self.closing = (EVICTED, "viewer too slow: evicted")

    async def heartbeat(self) -> None:
        """Ping regularly; drop a client silent for longer than the timeout."""
        s = self.settings
        while True:
            await asyncio.sleep(s.heartbeat_interval)
            now = time.monotonic()
            if self.sending_since is not None and now - self.sending_since > s.heartbeat_timeout:
                self.closing = (EVICTED, "viewer too slow: evicted")
                return
            if now - self.last_heard > s.heartbeat_timeout:
                self.closing = (HEARTBEAT_LOST, "no answer to pings")
                return
            text = dumps({"type": "ping", "server_time": time.time()})
            with contextlib.suppress(TimeoutError):  # a client not reading must not stall this
                async with asyncio.timeout(s.heartbeat_interval):
                    await self.ws.send_text(text)

    async def receive(self, run_id: str | None) -> None:
        """Read what the client sends: size and rate limited, controls for presenters only."""
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
            self.last_heard = time.monotonic()
            text, data = message.get("text"), message.get("bytes")
            size = len(text.encode()) if text is not None else len(data or b"")
            if size > self.settings.max_message_bytes:
                self.closing = (TOO_BIG, "message over 4 KiB")
                return
            if not self.rate.allow():
                self.closing = (POLICY, "too many messages")
                return
            if text is None:
                reply = {"type": "error", "detail": "messages must be JSON text, not binary"}
            else:
                reply = await self._answer(text, run_id)
            if reply is not None and not await self.send(dumps(finite(reply))):
                return

    async def _answer(self, text: str, run_id: str | None) -> dict | None:
        try:
            message = json.loads(text)
            kind = message.get("type") if isinstance(message, dict) else None
        except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
            return {"type": "error", "detail": "messages must be JSON objects"}
        if kind in ("pong", "ping"):
            return None
        if kind != "control":
            return {"type": "error", "detail": f"unknown message type {kind!r}"}
        if not self.presenter:
            return {"type": "error", "detail": "refused: viewers cannot control the run"}
        run = self.ws.app.state.manager.get(run_id) if run_id else None
        if run is None:
            return {"type": "error", "detail": "this run is not live"}
        try:
            asked = {k: v for k, v in message.items() if k != "type"}
            body = read_control(asked)
            return {"type": "ack", **await apply_control(run, body)}
        except ValidationError as exc:
            error = located(exc.errors(include_url=False), asked)[0]
            field = ".".join(str(part) for part in error["loc"])
            return {"type": "error", "detail": f"{field}: {error['msg']}", "status": 422}
        except ControlError as exc:  # NeedsNewRun too: a structural setting
            return {"type": "error", "detail": str(exc), "status": 409}

    async def hold(self, hello: str, viewer: Viewer | None, run_id: str | None) -> None:
        """Send the hello, then stream until the client leaves, falls behind or goes silent."""
        if await self.send(hello):
            if viewer is not None and self.direct is not None:
                viewer.attach(self.direct)  # frames now skip the queue and the ASGI send path
            tasks = [
                asyncio.create_task(self.receive(run_id)),
                asyncio.create_task(self.heartbeat()),
            ]
            if viewer is not None:
                tasks.append(asyncio.create_task(self.send_queue(viewer)))
                tasks.append(asyncio.create_task(self.evicted(viewer)))
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)  # bounded, whatever a task does
            done = [t for t in tasks if t.done() and not t.cancelled()]
            failed = [t.exception() for t in done if t.exception()]
            failed = [e for e in failed if not isinstance(e, WebSocketDisconnect | OSError)]
            if failed and not self.closing:
                log.error("websocket session failed", exc_info=failed[0])
                self.closing = (INTERNAL, "internal error")
        if self.closing and not (self.direct is not None and self.direct.closed):
            await _close(self.ws, *self.closing)  # (an evicted direct viewer has its close frame)


def direct_socket(ws: WebSocket) -> DirectSocket | None:
    """The connection's uvicorn protocol, reached through the ASGI `receive` it gave us."""
    return DirectSocket.of(getattr(ws._receive, "__self__", None))


@router.websocket("/ws/runs/{run_id}")
async def run_stream(
    ws: WebSocket,
    run_id: str,
    replay: bool = False,
    steps_per_second: float = Query(30.0, ge=0.1, le=100_000.0),
    start: int = Query(0, ge=0),
    token: str | None = None,
    detail: Detail = "audience",
) -> None:
    app = ws.app
    settings, limits = app.state.settings, app.state.limits
    if not origin_allowed(
        ws.headers.get("origin"), ws.headers.get("host"), settings.allowed_origins
    ):
        await _close(ws, FORBIDDEN_ORIGIN, "cross-site websocket refused")
        return
    address = ws.client.host if ws.client else "?"
    refused = limits.refuse_reason(address)
    await ws.accept()
    if refused:
        await _close(ws, TRY_LATER, refused)
        return
    limits.acquire(address)
    try:
        offered = offered_token(ws.headers, ws.cookies, token)
        session = Session(ws, app.state.access.is_presenter(offered), direct_socket(ws))
        await _route(session, run_id, replay, steps_per_second, start, detail)
    except WebSocketDisconnect:
        pass
    finally:
        limits.release(address)


async def _route(
    session: Session, run_id: str, replay: bool, steps_per_second: float, start: int, detail: Detail
) -> None:
    app = session.ws.app
    manager, store = app.state.manager, app.state.store
    live = None if replay else await manager.watch(run_id)
    if live is not None:
        with live.channel.subscribe(detail) as (viewer, hello):
            await session.hold(hello, viewer, run_id)
        return
    record = await asyncio.to_thread(store.get_run, run_id)
    if record is None:
        await _close(session.ws, UNKNOWN_RUN, f"no run with id {run_id!r}")
        return
    if not replay:
        hello = dumps(await asyncio.to_thread(stored_hello, store, record))
        await session.hold(hello, None, None)
        return
    await _replay(session, store, record, steps_per_second, start, detail)


async def _replay(
    session: Session, store, record: dict, steps_per_second: float, start: int, detail: Detail
):
    description = {**stored_description(record), "state": REPLAYING}
    channel = Channel(
        record["id"],
        len(record["layers"]) - 1,
        asyncio.get_running_loop(),
        describe=lambda: description,
    )
    await asyncio.to_thread(seed_earlier, channel, store, record, start)
    pump = asyncio.create_task(channel.pump())
    feeder = asyncio.create_task(play(channel, store, record, steps_per_second, start))
    try:
        with channel.subscribe(detail, replay=True, start=start) as (viewer, hello):
            await session.hold(hello, viewer, None)
    finally:
        feeder.cancel()
        pump.cancel()
