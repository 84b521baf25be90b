"""Columnar per-step records: the engine writes rows, sinks receive whole blocks."""

import numpy as np

SCALAR_COLUMNS = ("step", "t", "epoch", "loss", "accuracy", "entropy", "crescendo")
LAYER_COLUMNS = ("act_rms", "grad_norm", "update_ratio")
INT_COLUMNS = ("step", "epoch")
EXACT_COLUMNS = ("step", "t", "epoch")  # everything else is reported at float32 precision

StepBlock = dict[str, np.ndarray]


class StepBuffer:
    """Preallocated columns so recording a step allocates nothing; `take` hands over a block."""

    def __init__(self, n_layers: int, capacity: int = 4096) -> None:
        self.capacity, self.n = capacity, 0
        self.columns: StepBlock = {
            name: np.zeros(capacity, dtype=np.int64 if name in INT_COLUMNS else np.float64)
            for name in SCALAR_COLUMNS
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
        block = {name: col[: self.n].copy() for name, col in self.columns.items()}
        self.n = 0
        return block


def empty_block(n_layers: int) -> StepBlock:
    return StepBuffer(n_layers, capacity=0).take()


def concat_blocks(blocks: list[StepBlock], n_layers: int) -> StepBlock:
    if not blocks:
        return empty_block(n_layers)
    return {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}


def block_row(block: StepBlock, i: int) -> dict:
    """One step as plain Python values, as reported on the wire (None for non-finite)."""
    row = {}
    for name, col in block.items():
        v = col[i]
        if name in INT_COLUMNS:
            row[name] = int(v)
        elif name in EXACT_COLUMNS:
            row[name] = finite_or_none(float(v))
        else:
            narrow = np.atleast_1d(v).astype(np.float32).astype(str)
            values = [finite_or_none(float(x)) for x in narrow]
            row[name] = values if np.ndim(v) else values[0]
    return row


def finite_or_none(x: float) -> float | None:
    return x if x == x and x not in (float("inf"), float("-inf")) else None
