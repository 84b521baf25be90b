"""Where a frame's latency goes, inside the bench's server (`bench/fanout.py --trace FILE`).

It wraps a run's `Channel` so each step block is timed at four points: its oldest step's
`t` (in the training child), its arrival from the pipe (`on_steps`, reader thread), the
pump's tick that drained it, and the start and end of the write that carried it to the
audience. Each write's rows are appended to FILE as JSON lines; `summarise` prints each
stage's median, p99 and max, and the stages of the slowest blocks.
"""

import json
import time
from pathlib import Path

import numpy as np


def install(path: Path) -> None:
    """Patch `Channel` in this (the server's) process; each write's rows go to `path`."""
    from app.live import channel

    out = path.open("a", buffering=1)  # a row: [t_oldest, arrived, drained, began, ended]
    arrived: list[list[float]] = []
    drained: list[list[float]] = []
    on_steps, drain, write_audience = (
        channel.Channel.on_steps,
        channel.Channel._drain,
        channel.Channel._write_audience,
    )

    def traced_on_steps(self, run_id, block):
        arrived.append([float(block["t"][0]), time.time()])
        on_steps(self, run_id, block)

    def traced_drain(self):
        now = time.time()
        while arrived:
            drained.append([*arrived.pop(0), now])
        return drain(self)

    def traced_write_audience(self, now):
        began = time.time()
        write_audience(self, now)
        ended = time.time()
        out.write("".join(json.dumps([*r, began, ended]) + "\n" for r in drained))
        drained.clear()

    channel.Channel.on_steps = traced_on_steps
    channel.Channel._drain = traced_drain
    channel.Channel._write_audience = traced_write_audience


STAGES = (
    "child → pipe → reader",
    "reader → pump tick",
    "tick → write",
    "the write",
    "write → first viewer",
    "first → last viewer",
)


def summarise(path: Path, since: float, until: float, arrivals: list) -> None:
    """Each stage's figures; `arrivals`: [oldest t, first, last arrival] of each frame seen."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows = np.array([r for r in rows if since <= r[0] <= until])
    if not len(rows):
        print("trace: no blocks in the window")
        return
    seen = {t: (first, last) for t, first, last in arrivals}
    rows = np.array([[*r, *seen[r[0]]] for r in rows if r[0] in seen])  # a frame's oldest
    stages = np.diff(rows, axis=1) * 1e3
    total = (rows[:, -1] - rows[:, 0]) * 1e3  # to the last viewer
    print(f"trace              {len(rows)} frames by their oldest block; ms: median / p99 / max")
    for name, s in zip(STAGES, stages.T, strict=True):
        print(f"  {name:22s} {np.median(s):6.1f} {np.percentile(s, 99):6.1f} {s.max():6.1f}")
    print(f"  {'step → last viewer':22s} {np.median(total):6.1f} {np.percentile(total, 99):6.1f}"
          f" {total.max():6.1f}")  # fmt: skip
    slow = np.argsort(total)[-8:][::-1]
    print("  slowest blocks (stages, ms):")
    for i in slow:
        print("    " + " + ".join(f"{x:5.1f}" for x in stages[i]) + f" = {total[i]:5.1f}")
