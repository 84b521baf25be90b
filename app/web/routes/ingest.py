"""Outside runs: a training script elsewhere creates a run and sends its steps here.

Over HTTP, each `POST /api/runs/{id}/steps` answers with the run's state. Over the
ingest websocket, every batch gets an `ack` and the presenter's pause, resume and stop
are pushed as `state` messages the moment they happen; a script whose socket closes
without ending its run leaves it `interrupted`. Both need the presenter token when the
server is shared, as every control does.

On a broker (README, "Scaling out") only the run's home, the process the script created
it on, takes its steps: another process answers 421 (the socket closes with 4021) naming
the home, and forwards nothing.
"""

import asyncio
import contextlib
import json
import weakref

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.engine.steps import finite
from app.live.external import ExternalRun, OutsideShape
from app.live.handle import ControlError
from app.live.ingest import (
    INGEST_MESSAGE_BYTES,
    INGEST_RATE,
    BatchError,
    OutsideRunSpec,
    StepBatch,
)
from app.live.manager import TooManyRuns
from app.live.wire import dumps
from app.web.routes.deps import Manager, Presenter, not_found
from app.web.routes.errors import errors
from app.web.routes.runs import run_links
from app.web.routes.stream import FORBIDDEN_ORIGIN, POLICY, TOO_BIG, TRY_LATER, UNKNOWN_RUN
from app.web.security import RateLimit, origin_allowed

router = APIRouter(tags=["outside runs"])
STATE_POLL = 0.05  # s between the websocket's looks at the run's state (pause reaches the script)
NOT_PRESENTER = 4003  # close code: ingest without the presenter token on a shared server
MISDIRECTED = 4021  # close code: the run's steps go to another process (HTTP 421)

_rates: "weakref.WeakKeyDictionary[ExternalRun, RateLimit]" = weakref.WeakKeyDictionary()

REASONS = {
    403: "the server is shared and this needs the presenter token",
    404: "no such run",
    409: "not an outside run, or it has ended",
    421: "with --broker: another process is the run's home; send its steps there",
    413: "request body over the ingest limit (1 MiB)",
    422: "malformed batch; nothing of it was stored",
    429: "too many batches a second, or too many outside runs",
}


def outside_links() -> dict:
    """From a new outside run to sending its steps and to everything a run offers."""
    return {
        "post_steps": {"operationId": "post_steps", "parameters": {"run_id": "$response.body#/id"}},
        **run_links(),
    }


def _rate(handle: ExternalRun) -> RateLimit:
    if handle not in _rates:
        _rates[handle] = RateLimit(INGEST_RATE, int(2 * INGEST_RATE))
    return _rates[handle]


@router.post(
    "/api/runs/external",
    status_code=201,
    dependencies=[Presenter],
    operation_id="create_outside_run",
    responses={201: {"links": outside_links()}, **errors(403, 422, 429, reasons=REASONS)},
)
async def create_outside_run(spec: OutsideRunSpec, manager: Manager) -> dict:
    """Open a run for a script that trains elsewhere; send its steps to /steps or the socket."""
    try:
        run = await manager.create_outside(spec)
    except TooManyRuns as exc:
        raise HTTPException(429, str(exc)) from exc
    return {"id": run.id, "state": run.handle.state, "layers": spec.layers}


def misdirected(run_id: str, home: str) -> str:
    return (
        f"run {run_id!r} takes its steps on its home, {home}, the Backbeat process its script"
        " created it on; this process forwards none: send them there (behind a load balancer,"
        " keep a script's requests on one process, e.g. with sticky sessions)"
    )


async def outside_handle(manager, run_id: str) -> ExternalRun:
    if home := await manager.fed_elsewhere(run_id):
        raise HTTPException(421, misdirected(run_id, home))
    run = manager.get(run_id)
    if run is None:
        raise not_found(run_id)
    if not run.outside:
        if isinstance(run.config, OutsideShape):  # another process's, and it has ended
            raise HTTPException(409, f"run {run_id!r} is {run.handle.state}: it takes no steps")
        raise HTTPException(409, f"run {run_id!r} is trained by Backbeat: it takes no steps")
    return run.handle


def take(handle: ExternalRun, batch: StepBatch) -> dict:
    """Ingest one batch; ControlError (ended run) and BatchError (bad rows) reach the caller."""
    return finite(handle.ingest(batch))


@router.post(
    "/api/runs/{run_id}/steps",
    dependencies=[Presenter],
    max_body_size=INGEST_MESSAGE_BYTES,
    operation_id="post_steps",
    responses=errors(403, 404, 409, 413, 421, 422, 429, reasons=REASONS),
)
async def post_steps(run_id: str, batch: StepBatch, manager: Manager) -> dict:
    """Columnar steps of an outside run (at most 1,000 a batch); answers with its state."""
    handle = await outside_handle(manager, run_id)
    if not _rate(handle).allow():
        raise HTTPException(429, f"at most {INGEST_RATE:g} batches a second per run")
    try:
        return await asyncio.to_thread(take, handle, batch)
    except BatchError as exc:  # a row too wide or narrow for the run: answered as any 422
        problems = [{**p, "loc": ("body", *p["loc"])} for p in exc.problems]
        raise RequestValidationError(problems) from exc
    except ControlError as exc:
        raise HTTPException(409, str(exc)) from exc


class IngestSocket:
    """One script's ingest websocket: batches in, acks and state changes out."""

    def __init__(self, ws: WebSocket, handle: ExternalRun) -> None:
        self.ws, self.handle = ws, handle
        self.rate = RateLimit(INGEST_RATE, int(2 * INGEST_RATE))
        self.sending = asyncio.Lock()
        self.closing: tuple[int, str] | None = None

    async def send(self, message: dict) -> None:
        async with self.sending:
            await self.ws.send_text(dumps(finite(message)))

    async def receive(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            self.handle.heard()
            text = message.get("text")
            if text is None or len(text) > INGEST_MESSAGE_BYTES:
                self.closing = (TOO_BIG, "ingest messages are JSON text of at most 1 MiB")
                return
            if not self.rate.allow():
                self.closing = (POLICY, f"at most {INGEST_RATE:g} batches a second")
                return
            reply = await self.answer(text)
            if reply is not None:
                await self.send(reply)

    async def answer(self, text: str) -> dict | None:
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            return {"type": "error", "detail": "messages must be JSON objects"}
        kind = message.pop("type", None) if isinstance(message, dict) else None
        if kind == "ping":
            return {"type": "pong", "state": self.handle.state}
        if kind != "steps":
            return {"type": "error", "detail": f"unknown message type {kind!r}"}
        try:
            batch = StepBatch.model_validate(message)
            return {"type": "ack", **await asyncio.to_thread(take, self.handle, batch)}
        except ValidationError as exc:
            detail = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in detail["loc"])
            return {"type": "error", "detail": f"{where}: {detail['msg']}; nothing was stored"}
        except ValueError as exc:
            return {"type": "error", "detail": f"{exc}; nothing of this batch was stored"}
        except ControlError as exc:
            return {"type": "error", "detail": str(exc), "state": self.handle.state}

    async def follow(self) -> None:
        """Tell the script the moment the presenter pauses, resumes or stops its run."""
        told = self.handle.state
        await self.send({"type": "state", "state": told})
        while True:
            await asyncio.sleep(STATE_POLL)
            if self.handle.state != told:
                told = self.handle.state
                await self.send({"type": "state", "state": told})

    async def hold(self) -> None:
        self.handle.attach()
        tasks = [asyncio.create_task(self.receive()), asyncio.create_task(self.follow())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.handle.detach()  # a script that does not reconnect soon ends as interrupted
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=2.0)
        if self.closing:
            with contextlib.suppress(Exception):
                await self.ws.close(*self.closing)


@router.websocket("/ws/ingest/{run_id}")
async def ingest_stream(ws: WebSocket, run_id: str, token: str | None = None) -> None:
    app = ws.app
    settings, limits = app.state.settings, app.state.limits
    if not origin_allowed(
        ws.headers.get("origin"), ws.headers.get("host"), settings.allowed_origins
    ):
        await ws.close(FORBIDDEN_ORIGIN, "cross-site websocket refused")
        return
    address = ws.client.host if ws.client else "?"
    refused = limits.refuse_reason(address)
    await ws.accept()
    if refused:
        await ws.close(TRY_LATER, refused)
        return
    offered = token or ws.headers.get("x-backbeat-token")
    if not app.state.access.is_presenter(offered):
        await ws.close(NOT_PRESENTER, "ingest needs the presenter token")
        return
    if home := await app.state.manager.fed_elsewhere(run_id):
        await ws.close(MISDIRECTED, f"send this run's steps to its home, {home}"[:123])
        return
    run = app.state.manager.get(run_id)
    if run is None or not run.outside:
        await ws.close(UNKNOWN_RUN, f"no live outside run with id {run_id!r}")
        return
    limits.acquire(address)
    try:
        await IngestSocket(ws, run.handle).hold()
    except WebSocketDisconnect:
        pass
    finally:
        limits.release(address)
