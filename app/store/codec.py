"""How the store's rows hold steps, snapshots and JSON, whichever database keeps them.

Steps: each chunk row holds the columns' raw little-endian bytes, byte-shuffled (HDF5-style:
all first bytes, then all second bytes, ...) and zlib-compressed. `step`, `t` and `epoch`
are kept exactly (int64/float64/int64); metrics are rounded to float32 when appended
(about 7 significant digits; NaN/inf survive, magnitudes beyond 3.4e38 become inf) and
read back as float64, so reads agree before and after a flush and a million steps take
about 40 MB.

Weight snapshots are raw float32 parameters with their activations and loss beside them:
weights' bits are near random, so zlib saved ~10 % at 37 ms a snapshot of a
150,000-parameter net (bench/snapshots.py), and the encoding runs on the run's reader thread.
"""

import json
import zlib

import numpy as np

from app.engine.steps import COLUMNS, finite

Block = dict[str, np.ndarray]
NAMES = tuple(c.name for c in COLUMNS)


def dumps(obj) -> str:
    return json.dumps(finite(obj), allow_nan=False, separators=(",", ":"))


def encode_steps(block: Block) -> bytes:
    """Shuffled bytes compress far better: exponents and high bytes repeat step to step."""
    parts = []
    for c in COLUMNS:
        raw = np.ascontiguousarray(block[c.name], dtype=c.disk).view(np.uint8)
        parts.append(raw.reshape(-1, np.dtype(c.disk).itemsize).T.tobytes())
    return zlib.compress(b"".join(parts), 1)


def decode_steps(data: bytes, n: int, width: int) -> Block:
    buf, pos, block = zlib.decompress(data), 0, {}
    for c in COLUMNS:
        count, size = n * width if c.per_layer else n, np.dtype(c.disk).itemsize
        raw = np.frombuffer(buf, np.uint8, count * size, pos).reshape(size, count)
        col = np.ascontiguousarray(raw.T).view(c.disk).astype(c.dtype).reshape(count)
        block[c.name] = col.reshape(n, width) if c.per_layer else col
        pos += count * size
    return block


def encode_snapshot(snapshot: dict) -> tuple[str, bytes]:
    """(meta JSON, blob): each layer's weights then biases, float32 little-endian."""
    weights, biases = snapshot["weights"], snapshot["biases"]
    meta = {
        "shapes": [list(np.shape(w)) for w in weights],
        "activations": list(snapshot["activations"]),
        "loss": snapshot["loss"],
    }
    parts = [
        np.asarray(a, "<f4").tobytes() for pair in zip(weights, biases, strict=True) for a in pair
    ]
    return dumps(meta), b"".join(parts)


def decode_snapshot(step: int, meta: str, data: bytes) -> dict:
    """A snapshot as GET /api/runs/{id}/model answers it (weights[i][j]: input i to unit j)."""
    info, flat, pos, layers = json.loads(meta), np.frombuffer(data, "<f4"), 0, []
    for (n_in, n_out), activation in zip(info["shapes"], info["activations"], strict=True):
        w = flat[pos : pos + n_in * n_out].reshape(n_in, n_out)
        b = flat[pos + n_in * n_out : pos + n_in * n_out + n_out]
        pos += n_in * n_out + n_out
        layers.append({"weights": w.tolist(), "biases": b.tolist(), "activation": activation})
    return {"step": step, "loss": info["loss"], "layers": layers, "snapshot": True}
