"""Weight snapshots at evaluations, so a replay can draw the network as it was at any step.

The bound: a run keeps at most `snapshot_cap(layers)` snapshots, i.e. MAX_SNAPSHOTS, or
fewer for a big network so its float32 weights stay within SNAPSHOT_BUDGET bytes: 256
snapshots of the default 4–8–8–1 network (121 parameters) take about 124 KB; the largest
network allowed (200,000 parameters) keeps 10, 8 MB in all.

Which evaluations keep one (`SnapshotPlan`): evaluation k (0, 1, 2, ... in the order they
happen) keeps its snapshot when k is a multiple of the stride, which starts at 1. Once more
than the cap are kept the stride doubles and the kept ones off the new stride are dropped,
so a run always has between cap/2 and cap snapshots spread evenly over its evaluations so
far. The training process runs the plan (it sends weights only for kept evaluations), so
a long run costs no more pipe traffic than a short one.
"""

import numpy as np

from app.engine.config import count_parameters

MAX_SNAPSHOTS = 256  # snapshots kept per run at most
MIN_SNAPSHOTS = 8  # ... and at least this many, whatever the network's size
SNAPSHOT_BUDGET = 8 * 2**20  # bytes of float32 weights kept per run (the floor may exceed it)


def snapshot_cap(layers: list[int]) -> int:
    """How many snapshots a run with these layer sizes keeps at most."""
    per_snapshot = 4 * count_parameters(layers)
    return max(MIN_SNAPSHOTS, min(MAX_SNAPSHOTS, SNAPSHOT_BUDGET // max(per_snapshot, 1)))


class SnapshotPlan:
    """Which evaluations keep a snapshot, and which kept ones give way as the run grows."""

    def __init__(self, cap: int) -> None:
        if cap < 2:
            raise ValueError("a snapshot plan needs a cap of at least 2")
        self.cap, self.stride, self.count = cap, 1, 0
        self.kept: list[tuple[int, int]] = []  # (evaluation index, step), oldest first

    def add(self, step: int) -> tuple[bool, list[int]]:
        """An evaluation at `step`: (keep its snapshot?, the steps of kept ones to drop now)."""
        k, self.count = self.count, self.count + 1
        if k % self.stride:
            return False, []
        self.kept.append((k, step))
        if len(self.kept) <= self.cap:
            return True, []
        self.stride *= 2
        dropped = [s for j, s in self.kept if j % self.stride]
        self.kept = [(j, s) for j, s in self.kept if j % self.stride == 0]
        return k % self.stride == 0, [s for s in dropped if s != step]


def take_snapshot(net, dropped: list[int]) -> dict:
    """A network's parameters now, as float32 arrays, with what the store needs to keep them."""
    acts = [net.activation] * (net.n_layers - 1) + [net.output]
    return {
        "weights": [np.asarray(w, np.float32).copy() for w in net.weights],
        "biases": [np.asarray(b, np.float32).copy() for b in net.biases],
        "activations": acts,
        "loss": net.loss_name,
        "dropped": dropped,
    }
