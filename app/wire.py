"""Turning step blocks and events into wire JSON: once per message, never NaN or Infinity.

Metrics travel at float32 precision (7 significant digits, what the store keeps), so a
replay from the store is identical to the live stream; `t` and integers stay exact.
"""

import math

import numpy as np
import orjson

from app.steps import EXACT_COLUMNS, StepBlock

BEAT_COLUMNS = ("step", "t", "epoch", "loss", "accuracy", "entropy", "act_rms")
ECHO_COLUMNS = ("grad_norm", "update_ratio")


def column(name: str, values: np.ndarray) -> np.ndarray:
    """A column ready for orjson: contiguous, metrics narrowed to float32."""
    if name not in EXACT_COLUMNS and values.dtype == np.float64:
        values = values.astype(np.float32)
    return np.ascontiguousarray(values)


def block_columns(block: StepBlock) -> dict:
    """A step block as the columnar `beats` / `echoes` / `crescendo` of a frame."""
    return {
        "beats": {name: column(name, block[name]) for name in BEAT_COLUMNS},
        "echoes": {name: column(name, block[name]) for name in ECHO_COLUMNS},
        "crescendo": column("crescendo", block["crescendo"]),
    }


def clean(value):
    """Replace non-finite floats (at any depth) with None, for responses FastAPI encodes."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, np.generic):
        return clean(value.item())
    return value


def dumps(message: dict) -> str:
    """Serialise once for every viewer; numpy arrays go straight in, NaN/Inf become null."""
    return orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY).decode()
