"""Columnar per-step records: the one schema of a step, which the store, wire and history read.

The engine writes rows into preallocated columns; sinks receive whole blocks. Each column
says its dtype in memory, its dtype on disk (metrics keep float32 precision: about 7
significant digits), whether it holds one value per weight layer, and where it travels
in a wire frame.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

StepBlock = dict[str, np.ndarray]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # in memory, and as read back from the store
    disk: str  # little-endian, as written to the store; narrower than dtype = float32 precision
    frame: str  # the part of a wire frame it travels in: beats, echoes or crescendo
    per_layer: bool = False  # shape (n, L), L = weight layers

    @property
    def exact(self) -> bool:
        """Kept and reported exactly (step, time, epoch); the metrics are narrowed."""
        return np.dtype(self.dtype) == np.dtype(self.disk)


COLUMNS = (  # this order is the store's on-disk order: append, never reorder
    Column("step", "int64", "<i8", "beats"),
    Column("t", "float64", "<f8", "beats"),
    Column("epoch", "int64", "<i8", "beats"),
    Column("loss", "float64", "<f4", "beats"),
    Column("accuracy", "float64", "<f4", "beats"),
    Column("entropy", "float64", "<f4", "beats"),
    Column("crescendo", "float64", "<f4", "crescendo"),
    Column("act_rms", "float64", "<f4", "beats", per_layer=True),
    Column("grad_norm", "float64", "<f4", "echoes", per_layer=True),
    Column("update_ratio", "float64", "<f4", "echoes", per_layer=True),
)
SCHEMA = {c.name: c for c in COLUMNS}
SCALAR_COLUMNS = tuple(c.name for c in COLUMNS if not c.per_layer)
LAYER_COLUMNS = tuple(c.name for c in COLUMNS if c.per_layer)
EXACT_COLUMNS = tuple(c.name for c in COLUMNS if c.exact)


class StepBuffer:
    """Preallocated columns so recording a step allocates nothing; `take` hands over a block."""

    def __init__(
        self, n_layers: int, capacity: int = 4096, finish: Callable[[int], None] | None = None
    ) -> None:
        self.capacity, self.n = capacity, 0
        self.finish = finish  # completes the first n rows in bulk, just before they are taken
        self.columns: StepBlock = {
            name: np.zeros(capacity, dtype=SCHEMA[name].dtype) for name in SCALAR_COLUMNS
        }
        # the per-layer columns share one array, so a step's echoes are written in one go
        self.layers = np.zeros((capacity, len(LAYER_COLUMNS), n_layers))
        for k, name in enumerate(LAYER_COLUMNS):
            self.columns[name] = self.layers[:, k]

    @property
    def full(self) -> bool:
        return self.n >= self.capacity

    def take(self) -> StepBlock:
        """Copy out the rows written since the last take and start afresh."""
        if self.finish is not None and self.n:
            self.finish(self.n)
        block = {name: col[: self.n].copy() for name, col in self.columns.items()}
        self.n = 0
        return block


def empty_block(n_layers: int, names: tuple[str, ...] = tuple(SCHEMA)) -> StepBlock:
    """A block of no steps, with every column's dtype and per-layer width."""
    return {
        name: np.zeros((0, n_layers) if SCHEMA[name].per_layer else 0, SCHEMA[name].dtype)
        for name in names
    }


def concat_blocks(
    blocks: list[StepBlock], n_layers: int, names: tuple[str, ...] | None = None
) -> StepBlock:
    """Blocks end to end (the columns of the first, or `names`); no blocks is an empty block."""
    names = names or (tuple(blocks[0]) if blocks else tuple(SCHEMA))
    if not blocks:
        return empty_block(n_layers, names)
    return {name: np.concatenate([b[name] for b in blocks]) for name in names}


def block_row(block: StepBlock, i: int) -> dict:
    """One step as plain Python values, as reported on the wire (None for non-finite)."""
    row = {}
    for name, col in block.items():
        v = col[i]
        if SCHEMA[name].exact:
            row[name] = finite(v.item())
        else:
            values = finite(np.atleast_1d(v).astype(np.float32).astype(str).astype(float))
            row[name] = values if np.ndim(v) else values[0]
    return row


def finite(value):
    """`value` as plain Python, NaN and ±Infinity (at any depth) as None: JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return finite(value.tolist())
    if isinstance(value, np.generic):
        return finite(value.item())
    return value
