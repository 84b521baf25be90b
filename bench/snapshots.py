"""Weight snapshots: what one costs at an evaluation, and what a run keeps on disk at most.

    .venv/bin/python bench/snapshots.py          # default and largest networks, 200 rounds each

For each network it builds the engine's network, then times (median of the rounds, in the
training process's terms) `take_snapshot` (float32 copy of every weight) plus pickling it
(the pipe to the server), and the store's encoding (float32 bytes, zlib level 1). It prints
the compressed size, the cap (app/live/snapshots.py) and so the most a run keeps, beside the
time of one training step of that network at batch 10 for scale.
"""

import pickle
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine.config import RunConfig, count_parameters  # noqa: E402
from app.engine.trainer import Trainer  # noqa: E402
from app.live.snapshots import snapshot_cap, take_snapshot  # noqa: E402
from app.store.codec import encode_snapshot as _encode_snapshot  # noqa: E402

NETWORKS = {
    "default 4-8-8-1": {},
    "digits 64-256-256-256-10": {"dataset": "digits", "hidden": [256, 256, 256]},
}
ROUNDS = 200


def median_ms(fn, rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    print(f"{'network':28} {'params':>8} {'snap+pickle ms':>15} {'encode ms':>10} "
          f"{'stored KB':>10} {'cap':>5} {'run max MB':>11} {'step ms':>8}")  # fmt: skip
    for name, extra in NETWORKS.items():
        config = RunConfig.model_validate({"steps_per_second": None, **extra})
        trainer = Trainer(config)
        net = trainer.net
        snap = take_snapshot(net, [])
        take = median_ms(lambda n=net: pickle.dumps(take_snapshot(n, []), pickle.HIGHEST_PROTOCOL))
        encode = median_ms(lambda s=snap: _encode_snapshot(s))
        stored = len(_encode_snapshot(snap)[1])
        cap = snapshot_cap(config.layers)
        step = median_ms(trainer.train_step, 50)
        params = count_parameters(config.layers)
        print(f"{name:28} {params:>8,} {take:>15.3f} {encode:>10.3f} {stored / 1024:>10.1f} "
              f"{cap:>5} {cap * stored / 2**20:>11.2f} {step:>8.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
