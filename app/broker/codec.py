"""Stream entries: step blocks as raw numpy columns, events and everything else as JSON.

A steps entry is `k=steps`, `d=<header length, 4 bytes><JSON header><column bytes>`; the
header names each column's dtype and shape. No pickle: a broker's bytes are never code.
"""

import struct

import numpy as np
import orjson

from app.engine.steps import StepBlock
from app.engine.tables import Table


def pack(obj) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


def unpack(data: bytes):
    return orjson.loads(data)


def end_entry(end: dict, model=None) -> dict:
    """The stream entry of an `end` that no training process sent (reaped, or cancelled)."""
    status = [end["state"], None, end["step"], 0, end["summary"]]
    return {"k": "event", "d": pack(end), "s": pack(status), "m": pack(model), "end": b"1"}


def encode_block(block: StepBlock) -> bytes:
    header, parts = [], []
    for name, col in block.items():
        col = np.ascontiguousarray(col)
        header.append([name, col.dtype.str, list(col.shape)])
        parts.append(col.tobytes())
    head = orjson.dumps(header)
    return struct.pack("<I", len(head)) + head + b"".join(parts)


def decode_block(data: bytes) -> StepBlock:
    (size,) = struct.unpack_from("<I", data)
    pos, block = 4 + size, {}
    for name, dtype, shape in orjson.loads(data[4 : 4 + size]):
        dt = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        block[name] = np.frombuffer(data, dt, count, pos).reshape(shape).copy()
        pos += count * dt.itemsize
    return block


def encode_table(table: Table | None) -> bytes:
    """An uploaded set's rows travel with its job, as the store keeps them."""
    return b"" if table is None else table.to_bytes()


def decode_table(data: bytes) -> Table | None:
    return Table.from_bytes(data) if data else None
