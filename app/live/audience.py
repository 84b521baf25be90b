"""Audience frames: a viewer gets what it can hear and see, a summary once steps outrun the ear.

A page fuses steps into at most ~16 beats a second and draws its charts at pixel
resolution, so a frame of hundreds of steps is, for it, their count, first and last step,
and per column mean / min / max / last. Scripts that want every step ask for
`?detail=full`; the store keeps every step either way.
"""

from typing import Literal

import numpy as np

from app.engine.steps import COLUMNS, EXACT_COLUMNS, StepBlock
from app.live.wire import block_columns, column

SUMMARY_ABOVE = 16  # steps per frame: a frame with more steps goes to the audience summarised
SUMMARY_COLUMNS = tuple(c.name for c in COLUMNS if c.name != "step")  # step: first, last
STATS = ("mean", "min", "max", "last")  # the order of each column's four on the wire

Detail = Literal["audience", "full"]
DETAILS: tuple[Detail, ...] = ("audience", "full")


def summarise(block: StepBlock) -> dict:
    """One frame's steps reduced per column: `{column: [mean, min, max, last]}`; NaN/Inf → null.

    A layer column's four are each a list, per layer. Column first, so each name is sent
    once, not once per statistic (a quarter of a summary's bytes). Reductions are numpy's,
    over float64, with no NaN skipping: a column with any non-finite step in the frame
    has a null mean, min and max (and, on the wire, `last` is null if the last step's
    value is). Metrics are then narrowed to float32 like a full frame's, `t` and `epoch`
    stay exact.
    """
    reduce = {
        "mean": lambda v: v.mean(axis=0, dtype=np.float64),
        "min": lambda v: v.min(axis=0),
        "max": lambda v: v.max(axis=0),
        "last": lambda v: v[-1],
    }
    out: dict = {}
    for name in SUMMARY_COLUMNS:
        out[name] = stats = []
        for stat in STATS:
            v = np.asarray(reduce[stat](block[name]))
            if name == "epoch" and stat != "mean":
                stats.append(int(v))
            elif v.ndim:
                stats.append(column(name, v))
            else:
                stats.append(_narrow(name, float(v)))
    return out


def _narrow(name: str, x: float) -> float | np.float32:
    """float32 metrics stay numpy scalars so orjson writes them as a full frame's: 0.064089."""
    return x if name in EXACT_COLUMNS else np.float32(x)


def summary_frame(block: StepBlock) -> dict:
    steps = block["step"]
    return {
        "type": "frame",
        "count": len(steps),
        "first": int(steps[0]),
        "last": int(steps[-1]),
        "summary": summarise(block),
    }


def full_frame(block: StepBlock) -> dict:
    return {"type": "frame", **block_columns(block)}


class Frame:
    """One tick's steps; each detail's message is built only if a viewer asks for it."""

    def __init__(self, block: StepBlock) -> None:
        self.block = block
        self._messages: dict[Detail, dict] = {}

    def message(self, detail: Detail) -> dict:
        if detail not in self._messages:
            summarised = detail == "audience" and len(self.block["step"]) > SUMMARY_ABOVE
            self._messages[detail] = (
                summary_frame(self.block) if summarised else full_frame(self.block)
            )
        return self._messages[detail]
