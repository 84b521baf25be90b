"""A bounded, evenly thinned history of a run's steps, for late joiners' `hello`."""

import numpy as np

from app.engine.steps import StepBlock, concat_blocks, empty_block

HISTORY_POINTS = 1000  # at most this many steps go in a hello
HISTORY_COLUMNS = ("step", "loss", "accuracy", "entropy", "crescendo", "grad_norm")


class History:
    """Keeps every `stride`-th step; doubles the stride whenever it would exceed the cap."""

    def __init__(self, n_layers: int, cap: int = HISTORY_POINTS) -> None:
        self.n_layers, self.cap, self.stride = n_layers, cap, 1
        self.blocks: list[StepBlock] = []
        self.size = 0

    def add(self, block: StepBlock) -> None:
        keep = block["step"] % self.stride == 0
        if not keep.any():
            return
        part = {name: block[name][keep] for name in HISTORY_COLUMNS}
        self.blocks.append(part)
        self.size += int(keep.sum())
        while self.size > self.cap:
            self.stride *= 2
            merged = concat_blocks(self.blocks, self.n_layers)
            keep = merged["step"] % self.stride == 0
            self.blocks = [{name: col[keep] for name, col in merged.items()}]
            self.size = int(keep.sum())

    def columns(self) -> StepBlock:
        if not self.blocks:
            return empty_block(self.n_layers, HISTORY_COLUMNS)
        merged = concat_blocks(self.blocks, self.n_layers)
        self.blocks = [merged]
        return merged


def thin(block: StepBlock, cap: int = HISTORY_POINTS) -> StepBlock:
    """Evenly thin a whole stored run to at most `cap` rows (the last step always kept)."""
    n = len(block["step"])
    if n <= cap:
        return {name: block[name] for name in HISTORY_COLUMNS}
    idx = np.unique(np.linspace(0, n - 1, cap).round().astype(np.intp))
    return {name: block[name][idx] for name in HISTORY_COLUMNS}
