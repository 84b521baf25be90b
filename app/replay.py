"""Streams from the store: a finished run's hello, and its replay at a tempo the client picks."""

import asyncio
import time

import numpy as np

from app.config import RunConfig
from app.history import thin
from app.hub import FRAME_INTERVAL, RECENT_EVALS, Channel, hello_message
from app.steps import StepBlock
from app.store import RunStore

REPLAYED_EVENTS = ("eval", "chime", "alarm", "overfit")


def stored_description(record: dict) -> dict:
    """A stored run described as a live one describes itself."""
    config = RunConfig.model_validate(record["config"])
    return {
        "id": record["id"],
        "state": record["state"],
        "step": record["step"],
        "epoch": None,
        **config.describe(),
        "steps_per_second": config.steps_per_second,
        "created": record["created"],
    }


def stored_hello(store: RunStore, record: dict) -> dict:
    """What a viewer of a run that is no longer training first receives."""
    steps = store.read_steps(record["id"])
    events = store.read_events(record["id"], types={"eval", *REPLAYED_EVENTS})
    evals = [e for e in events if e["type"] == "eval"]
    with_grid = [e for e in evals if e.get("grid")]
    keep = max(1, len(evals) // RECENT_EVALS + (len(evals) % RECENT_EVALS > 0))
    return hello_message(
        stored_description(record),
        thin(steps),
        [{k: v for k, v in e.items() if k != "grid"} for e in evals[::keep]],
        with_grid[-1] if with_grid else (evals[-1] if evals else None),
        [e for e in events if e["type"] != "eval"],
        seq=0,
    )


def seed_earlier(channel: Channel, store: RunStore, record: dict, start: int) -> None:
    """A replay scrubbed to `start` begins with the run's history before it, as a late joiner's."""
    if start <= 0:
        return
    earlier = store.read_steps(record["id"], stop=start)
    if len(earlier["step"]):
        channel.history.add(thin(earlier))
    evals = [e for e in store.read_events(record["id"], types={"eval"}) if e["step"] < start]
    if evals:
        channel._remember_evals(evals)


def _slice(block: StepBlock, lo: int, hi: int) -> StepBlock:
    return {name: col[lo:hi] for name, col in block.items()}


async def play(
    channel: Channel, store: RunStore, record: dict, steps_per_second: float, start: int = 0
) -> None:
    """Feed a private channel with a stored run's steps and events at the chosen tempo."""
    run_id = record["id"]
    steps = await asyncio.to_thread(store.read_steps, run_id, start=start)
    events = await asyncio.to_thread(store.read_events, run_id, types=set(REPLAYED_EVENTS))
    events = [e for e in events if e["step"] >= start]
    n, sent, ev_at = len(steps["step"]), 0, 0
    t0 = time.time()
    while sent < n:
        due = min(n, int((time.time() - t0) * steps_per_second) + 1)
        if due > sent:
            part = _slice(steps, sent, due)
            part["t"] = t0 + np.arange(sent, due) / steps_per_second
            channel.on_steps(run_id, part)
            last_step = int(steps["step"][due - 1])
            while ev_at < len(events) and events[ev_at]["step"] <= last_step:
                channel.on_event(run_id, events[ev_at])
                ev_at += 1
            sent = due
        await asyncio.sleep(max(FRAME_INTERVAL, 1.0 / steps_per_second))
    for event in events[ev_at:]:
        channel.on_event(run_id, event)
    last = int(steps["step"][-1]) if n else start
    summary = record.get("summary") or {}
    channel.on_event(
        run_id, {"type": "end", "state": record["state"], "step": last, "summary": summary}
    )
