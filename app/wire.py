"""Turning step blocks and events into wire JSON: once per message, never NaN or Infinity."""

import json
import math

import numpy as np

from app.steps import INT_COLUMNS, StepBlock

BEAT_COLUMNS = ("step", "t", "epoch", "loss", "accuracy", "entropy", "act_rms")
ECHO_COLUMNS = ("grad_norm", "update_ratio")


def column(values: np.ndarray) -> list:
    """A numpy column as a JSON-ready list, non-finite numbers as None."""
    if values.dtype.kind in "iu" or np.isfinite(values).all():
        return values.tolist()
    out = values.astype(object)
    out[~np.isfinite(values)] = None
    return out.tolist()


def block_columns(block: StepBlock) -> dict:
    """A step block as the columnar `beats` / `echoes` / `crescendo` of a frame."""
    return {
        "beats": {name: column(block[name]) for name in BEAT_COLUMNS},
        "echoes": {name: column(block[name]) for name in ECHO_COLUMNS},
        "crescendo": column(block["crescendo"]),
    }


def clean(value):
    """Replace non-finite floats (at any depth) with None so the JSON stays valid."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        return clean(value.item())
    return value


def dumps(message: dict) -> str:
    """Serialise a message that is already clean; refuses NaN rather than emit invalid JSON."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def block_from_columns(columns: dict) -> StepBlock:
    """Inverse of `block_columns` for stored or replayed data (None back to NaN)."""
    flat = {**columns["beats"], **columns["echoes"], "crescendo": columns["crescendo"]}
    out = {}
    for name, values in flat.items():
        if name in INT_COLUMNS:
            out[name] = np.asarray(values, dtype=np.int64)
        else:
            out[name] = np.array(values, dtype=object).astype(np.float64)
    return out
