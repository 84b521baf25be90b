"""Streams from the store: a finished run's hello, and its replay at a tempo the client picks."""

import asyncio
import time

import numpy as np

from app.engine.config import RunConfig
from app.engine.steps import StepBlock
from app.live.channel import FRAME_INTERVAL, RECENT_EVALS, Channel, hello_message
from app.live.external import describe_outside
from app.live.handle import end_event
from app.live.thinning import thin
from app.store import RunStore

REPLAYED_EVENTS = ("eval", "chime", "alarm", "overfit", "change", "plateau", "plateau_end")
REPLAYING = "replaying"  # the state a replay's description shows: the stream's, not the run's


def stored_description(record: dict) -> dict:
    """A stored run described as a live one describes itself."""
    if is_outside(record):
        shape, tempo = describe_outside(record["config"], record["layers"]), None
    else:
        config = RunConfig.model_validate(record["config"])
        shape, tempo = config.describe(), config.steps_per_second
    return {
        "id": record["id"],
        "state": record["state"],
        "step": record["step"],
        "epoch": None,
        **shape,
        "steps_per_second": tempo,
        "created": record["created"],
    }


def is_outside(record: dict) -> bool:
    """Trained by a script elsewhere (or imported from its logs), not by our engine."""
    return (record.get("config") or {}).get("source") == "external"


def stored_hello(store: RunStore, record: dict) -> dict:
    """What a viewer of a run that is no longer training first receives."""
    steps = store.read_steps(record["id"])
    events = store.read_events(record["id"], types={"eval", *REPLAYED_EVENTS})
    evals = [e for e in events if e["type"] == "eval"]
    with_grid = [e for e in evals if e.get("grid")]
    return hello_message(
        stored_description(record),
        thin(steps),
        [{k: v for k, v in e.items() if k != "grid"} for e in spread(evals)],
        with_grid[-1] if with_grid else (evals[-1] if evals else None),
        [e for e in events if e["type"] != "eval"],
        seq=0,
    )


def spread(evals: list[dict]) -> list[dict]:
    """At most RECENT_EVALS of them, evenly over the run (the newest always among them)."""
    if len(evals) <= RECENT_EVALS:
        return evals
    keep = -(-len(evals) // RECENT_EVALS)
    return evals[::-1][::keep][::-1]


def seed_earlier(channel: Channel, store: RunStore, record: dict, start: int) -> None:
    """A replay scrubbed to `start` begins with the run's history before it, as a late joiner's."""
    if start <= 0:
        return
    earlier = store.read_steps(record["id"], stop=start)
    if len(earlier["step"]):
        channel.history.add(thin(earlier))
    evals = [e for e in store.read_events(record["id"], types={"eval"}) if e["step"] < start]
    if evals:  # the charts' evaluation curves from step 0, not just the newest ones
        chosen = spread(evals)
        grids = [e["grid"] for e in evals if e.get("grid") is not None]
        if grids and chosen[-1].get("grid") is None:  # the picture as it was at `start`
            chosen[-1] = {**chosen[-1], "grid": grids[-1]}
        channel._remember_evals(chosen)


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
    channel.on_event(run_id, end_event(record["state"], last, record.get("summary") or {}))
