"""The websocket: a run's live stream (hello, then frames and events), or its replay."""

import asyncio
import contextlib

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from app.hub import EVICTED, Channel
from app.replay import play, stored_description, stored_hello
from app.wire import clean, dumps

router = APIRouter()

UNKNOWN_RUN = 4004  # close code: no such run


async def _send_queue(ws: WebSocket, viewer) -> None:
    while True:
        text = await viewer.queue.get()
        if text is None:
            await ws.close(EVICTED, "viewer too slow: evicted")
            return
        await ws.send_text(text)


async def _drain_incoming(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends, so a close is noticed at once."""
    while True:
        await ws.receive_text()


async def _serve(ws: WebSocket, channel: Channel, **hello_overrides) -> None:
    with channel.subscribe(**hello_overrides) as (viewer, hello):
        await ws.send_text(hello)
        tasks = [
            asyncio.create_task(_send_queue(ws, viewer)),
            asyncio.create_task(_drain_incoming(ws)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                    await task


@router.websocket("/ws/runs/{run_id}")
async def run_stream(
    ws: WebSocket,
    run_id: str,
    replay: bool = False,
    steps_per_second: float = Query(30.0, ge=0.1, le=100_000.0),
    start: int = Query(0, ge=0),
) -> None:
    manager, store = ws.app.state.manager, ws.app.state.store
    await ws.accept()
    live = manager.get(run_id)
    try:
        if live is not None and not replay:
            await _serve(ws, live.channel)
            return
        record = await asyncio.to_thread(store.get_run, run_id)
        if record is None:
            await ws.close(UNKNOWN_RUN, f"no run with id {run_id!r}")
            return
        if not replay:
            await ws.send_text(dumps(clean(await asyncio.to_thread(stored_hello, store, record))))
            await _drain_incoming(ws)
            return
        await _replay(ws, store, record, steps_per_second, start)
    except WebSocketDisconnect:
        pass


async def _replay(ws: WebSocket, store, record: dict, steps_per_second: float, start: int) -> None:
    n_layers = len(record["layers"]) - 1
    description = {**stored_description(record), "state": "replaying"}
    channel = Channel(
        record["id"],
        n_layers,
        asyncio.get_running_loop(),
        describe=lambda: description,
        persist_steps=lambda block: None,
        persist_event=lambda event: None,
    )
    pump = asyncio.create_task(channel.pump())
    feeder = asyncio.create_task(play(channel, store, record, steps_per_second, start))
    try:
        await _serve(ws, channel, replay=True)
    finally:
        feeder.cancel()
        pump.cancel()
