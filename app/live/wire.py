"""Turning step blocks and events into wire JSON: once per message, never NaN or Infinity.

Metrics travel at float32 precision (7 significant digits, what the store keeps), so a
replay from the store is identical to the live stream; `t` and integers stay exact.
"""

import struct

import numpy as np
import orjson

from app.engine.steps import COLUMNS, SCHEMA, StepBlock

BEAT_COLUMNS = tuple(c.name for c in COLUMNS if c.frame == "beats")
ECHO_COLUMNS = tuple(c.name for c in COLUMNS if c.frame == "echoes")


def column(name: str, values: np.ndarray) -> np.ndarray:
    """A column ready for orjson: contiguous, metrics narrowed to float32."""
    if not SCHEMA[name].exact and values.dtype == np.float64:
        values = values.astype(np.float32)
    return np.ascontiguousarray(values)


def block_columns(block: StepBlock) -> dict:
    """A step block as the columnar `beats` / `echoes` / `crescendo` of a frame."""
    return {
        "beats": {name: column(name, block[name]) for name in BEAT_COLUMNS},
        "echoes": {name: column(name, block[name]) for name in ECHO_COLUMNS},
        "crescendo": column("crescendo", block["crescendo"]),
    }


def dumps(message: dict) -> str:
    """Serialise once for every viewer; numpy arrays go straight in, NaN/Inf become null."""
    return orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def ws_text_frame(text: str) -> bytes:
    """One unmasked, unfragmented websocket text frame (RFC 6455 §5.2), as a server sends it.

    A server's frames carry no mask, so the bytes are the same for every viewer: a tick's
    messages are framed once and the same bytes go to every socket (app/live/direct.py).
    """
    data = text.encode()
    n = len(data)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + data
