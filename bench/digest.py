"""A digest of every number a set of runs produces, to show a speed-up changed none of them.

    .venv/bin/python bench/digest.py > before.txt   # on the old commit
    .venv/bin/python bench/digest.py > after.txt    # on the new one
    diff before.txt after.txt                        # no output: the same numbers, bit for bit

Each case trains unpaced for 700 steps (with a live change of batch size and learning rate
at step 300, and a net that diverges), evaluating on the trainer's own cadence with the
decision grid every time; the digest covers every step column but wall time, every eval and
event, and the final model. Digests are of this machine's BLAS: compare on one machine.
"""

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine.config import RunConfig  # noqa: E402
from app.engine.trainer import Trainer  # noqa: E402

CASES = [
    dict(dataset="digits", hidden=[32], activation="tanh", optimizer="sgd", batch_size=32),
    dict(
        dataset="digits",
        hidden=[16, 8],
        activation="relu",
        optimizer="adam",
        batch_size=7,
        regularization="l2",
        regularization_rate=0.01,
    ),
    dict(dataset="spiral", hidden=[8, 8], activation="tanh", optimizer="sgd", batch_size=10),
    dict(dataset="spiral"),
    dict(
        dataset="circle",
        hidden=[4],
        activation="sigmoid",
        optimizer="momentum",
        batch_size=5,
        regularization="l1",
        regularization_rate=0.003,
    ),
    dict(dataset="plane", hidden=[6], activation="relu", optimizer="adam"),
    dict(dataset="multigauss", hidden=[5], activation="linear", optimizer="sgd", learning_rate=0.3),
    dict(dataset="xor", hidden=[], optimizer="sgd", learning_rate=5.0),
    dict(dataset="digits", hidden=[8], learning_rate=10.0, optimizer="sgd"),  # diverges
]
STEPS = 700
CHANGE_AT = 300


def digest(case: dict) -> str:
    trainer = Trainer(RunConfig(**case, max_steps=STEPS, steps_per_second=None))
    h = hashlib.sha256()

    def blocks() -> None:
        block = trainer.buffer.take()
        block.pop("t")  # wall time
        for name in sorted(block):
            h.update(name.encode())
            h.update(block[name].tobytes())

    for s in range(STEPS):
        reason = trainer.train_step()
        if (s + 1) % trainer.eval_every == 0 or reason:
            ev, events = trainer.evaluate(with_grid=True)
            h.update(json.dumps([ev, events, reason], sort_keys=True, default=str).encode())
        if trainer.buffer.full or reason:
            blocks()
        if reason:
            break
        if s == CHANGE_AT and case.get("optimizer") != "adam":
            trainer.apply_changes({"batch_size": 13, "learning_rate": 0.05})
    blocks()
    h.update(json.dumps(trainer.model(), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def main() -> None:
    warnings.simplefilter("ignore", RuntimeWarning)  # the diverging case overflows on purpose
    for case in CASES:
        print(digest(case), json.dumps(case))


if __name__ == "__main__":
    main()
