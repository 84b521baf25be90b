"""Engine throughput beside a bare numpy loop (and PyTorch), measured side by side in one run.

    .venv/bin/python bench/engine.py            # steps/s per net and the engine/bare ratio
    .venv/bin/python bench/engine.py --long     # also a 1,000,000-step run's memory

The engine is the real thing: a Runner with a null sink, unpaced, so every per-step metric,
the evaluation cadence, the decision grid and the 60 Hz block hand-over are all included.
The bare loop is the same net written the natural way (per-layer weights, forward,
backward, SGD update, no metrics). Repeats are interleaved and medians reported, because
this machine's cores are shared and noisy. The figure judged is engine/bare per net.
"""

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

# One BLAS thread for every contender (PyTorch gets one too): on a small shared machine the
# idle BLAS workers spin and steal the training thread's core, making timings erratic.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from app.config import RunConfig  # noqa: E402
from app.engine import Trainer  # noqa: E402
from app.runner import Runner  # noqa: E402

NETS = {
    "playground": RunConfig(
        dataset="spiral", hidden=[8, 8], activation="tanh", optimizer="sgd", batch_size=10
    ),
    "digits": RunConfig(
        dataset="digits", hidden=[32], activation="tanh", optimizer="sgd", batch_size=32
    ),
}
TARGET_RATIO = 0.8
LONG_STEPS = 1_000_000
RSS_TOLERANCE = 2 * 2**20  # bytes the long run's RSS may drift once warmed up


class NullSink:
    """Receives blocks and events and drops them, remembering only how the run ended."""

    def __init__(self) -> None:
        self.ended = threading.Event()
        self.end: dict | None = None

    def on_steps(self, run_id: str, block: dict) -> None:
        pass

    def on_event(self, run_id: str, event: dict) -> None:
        if event["type"] == "end":
            self.end = event
            self.ended.set()


def engine_rate(config: RunConfig, steps: int) -> float:
    """Steps/s of a Runner driving a Trainer unpaced, from start to the end event."""
    cfg = config.model_copy(update={"max_steps": steps, "steps_per_second": None})
    trainer, sink = Trainer(cfg), NullSink()
    runner = Runner("bench", trainer, sink, steps_per_second=None)
    t0 = time.perf_counter()
    runner.start()
    sink.ended.wait()
    elapsed = time.perf_counter() - t0
    runner.join()
    assert sink.end is not None and sink.end["state"] == "finished", sink.end
    return steps / elapsed


def _data(config: RunConfig):
    """The same arrays the engine trains on: features, and labels as the loss wants them."""
    d = Trainer(config.model_copy(update={"max_steps": 1})).data
    if d.spec.n_classes > 2:
        return d.x_train, d.y_train.astype(np.intp)
    return d.x_train, d.y_train.astype(np.float64).reshape(-1, 1)


def bare_rate(config: RunConfig, steps: int) -> float:
    """A plain numpy MLP: tanh hidden layers, sigmoid or softmax output, minibatch SGD."""
    x, y = _data(config)
    sizes = config.layers
    softmax = sizes[-1] > 1
    rng = np.random.default_rng(config.seed)
    weights = [
        rng.normal(0.0, np.sqrt(2.0 / (i + o)), (i, o))
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    biases = [np.zeros(o) for o in sizes[1:]]
    lr, batch, n = config.learning_rate, config.batch_size, len(x)
    per_epoch = n // batch
    order = np.arange(n)
    t0 = time.perf_counter()
    for step in range(steps):
        i = step % per_epoch
        if i == 0:
            order = rng.permutation(n)
        idx = order[i * batch : (i + 1) * batch]
        xb, yb = x[idx], y[idx]
        acts = [xb]
        for w, b in zip(weights[:-1], biases[:-1], strict=True):
            acts.append(np.tanh(acts[-1] @ w + b))
        z = acts[-1] @ weights[-1] + biases[-1]
        if softmax:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            dz = p.copy()
            dz[np.arange(batch), yb] -= 1.0
        else:
            p = 1.0 / (1.0 + np.exp(-z))
            dz = p - yb
        dz /= batch
        for k in range(len(weights) - 1, -1, -1):
            grad_w, grad_b = acts[k].T @ dz, dz.sum(axis=0)
            if k:
                dz = (dz @ weights[k].T) * (1.0 - acts[k] ** 2)
            weights[k] -= lr * grad_w
            biases[k] -= lr * grad_b
    return steps / (time.perf_counter() - t0)


def torch_rate(config: RunConfig, steps: int) -> float | None:
    """The same net in PyTorch on one CPU thread, or None when torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    x, y = _data(config)
    sizes = config.layers
    softmax = sizes[-1] > 1
    torch.manual_seed(config.seed)
    layers: list = []
    for i, o in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [torch.nn.Linear(i, o, dtype=torch.float64), torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-2], sizes[-1], dtype=torch.float64))
    loss_fn = torch.nn.CrossEntropyLoss() if softmax else torch.nn.BCEWithLogitsLoss()
    opt = torch.optim.SGD(model.parameters(), lr=config.learning_rate)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    batch, n = config.batch_size, len(x)
    per_epoch = n // batch
    gen = torch.Generator().manual_seed(config.seed)
    order = torch.arange(n)
    t0 = time.perf_counter()
    for step in range(steps):
        i = step % per_epoch
        if i == 0:
            order = torch.randperm(n, generator=gen)
        idx = order[i * batch : (i + 1) * batch]
        opt.zero_grad()
        loss = loss_fn(model(xt[idx]), yt[idx])
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def rss() -> int:
    """Resident set size of this process in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def long_run(steps: int = LONG_STEPS) -> bool:
    """An unpaced Playground run of `steps`; RSS sampled as it goes must stay flat."""
    cfg = NETS["playground"].model_copy(update={"max_steps": steps, "steps_per_second": None})
    trainer, sink = Trainer(cfg), NullSink()
    runner = Runner("long", trainer, sink, steps_per_second=None)
    before = rss()
    samples: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    runner.start()
    while not sink.ended.wait(0.5):
        samples.append((trainer.step, rss()))
    elapsed = time.perf_counter() - t0
    runner.join()
    after = rss()
    warm = [r for s, r in samples if s >= steps // 10] or [after]
    drift = max(warm + [after]) - min(warm + [after])
    print(f"\nlong run: {steps:,} steps unpaced (playground net) in {elapsed:.0f} s")
    print(f"  RSS before {before / 2**20:.1f} MiB, at 10 % {warm[0] / 2**20:.1f} MiB, ", end="")
    print(f"after {after / 2**20:.1f} MiB; drift after warm-up {drift / 2**10:.0f} KiB")
    flat = drift <= RSS_TOLERANCE
    print(f"  memory flat: {'yes' if flat else 'NO'} (tolerance {RSS_TOLERANCE / 2**20:.0f} MiB)")
    return flat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=1.0, help="rough length of each timing")
    parser.add_argument("--long", action="store_true", help="also a 1,000,000-step memory run")
    args = parser.parse_args()

    threads = os.environ["OPENBLAS_NUM_THREADS"]
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}, BLAS threads {threads}")
    contenders = {"engine": engine_rate, "bare numpy": bare_rate, "pytorch (1 thread)": torch_rate}
    ratios = {}
    for name, config in NETS.items():
        # size each timing from a short calibration run so every contender runs ~args.seconds
        calib = {k: f(config, 500) for k, f in contenders.items()}
        rates: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(args.repeats):
            for k, f in contenders.items():
                if calib[k] is None:
                    continue
                steps = max(1000, int(calib[k] * args.seconds))
                rates[k].append(f(config, steps))
        shape = " -> ".join(map(str, config.layers))
        print(f"\n{name}: {shape}, batch {config.batch_size}, {config.dataset}, ", end="")
        print(f"{config.activation}, {config.optimizer}")
        for k, rs in rates.items():
            if rs:
                spread = f"(min {min(rs):,.0f}, max {max(rs):,.0f})"
                print(f"  {k:20s} {statistics.median(rs):>9,.0f} steps/s  {spread}")
            else:
                print(f"  {k:20s} not installed")
        ratios[name] = statistics.median(rates["engine"]) / statistics.median(rates["bare numpy"])

    ok = True
    if args.long:
        ok = long_run()
    print()
    for name, ratio in ratios.items():
        verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
        print(f"engine/bare {name}: {ratio:.2f} (target >= {TARGET_RATIO}) {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
