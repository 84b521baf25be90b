"""Engine throughput beside a bare numpy loop (and PyTorch), measured side by side in one run.

    .venv/bin/python bench/engine.py            # steps/s per net and the engine/bare ratio
    .venv/bin/python bench/engine.py --long     # also a 1,000,000-step run's memory

The engine is the real thing: a Runner with a null sink, unpaced, so every per-step metric,
the evaluation cadence (a full train + test evaluation every epoch), the decision grid and
the 60 Hz block hand-over are all included. The bare loop is the same net written the
natural way (per-layer weights, forward, backward, SGD update, no metrics).

This machine's two cores are shared and noisy, so rounds are interleaved (engine, bare,
torch; engine, bare, torch; ...), medians reported, and each rate is given twice: by the
wall clock and by the process's CPU time (which a neighbour's load disturbs far less).
The figure judged is engine/bare: the median over rounds of each round's ratio.
"""

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

# One BLAS thread for every contender (PyTorch gets one too): on a small shared machine the
# idle BLAS workers spin and steal the training thread's core, making timings erratic.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from app.engine.config import RunConfig  # noqa: E402
from app.engine.trainer import Trainer  # noqa: E402
from app.live.runner import Runner  # noqa: E402

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


class Rate(NamedTuple):
    wall: float  # steps per second of wall-clock time
    cpu: float  # steps per second of this process's CPU time


class Stopwatch:
    """Wall-clock and process CPU time from `start` to `rate`."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rate(self, steps: int) -> Rate:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return Rate(steps / wall, steps / max(cpu, 1e-9))


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


def engine_rate(config: RunConfig, steps: int) -> Rate:
    """A Runner driving a Trainer unpaced, from start to the end event."""
    cfg = config.model_copy(
        update={"max_steps": steps, "steps_per_second": None, "stop_at_convergence": False}
    )
    trainer, sink = Trainer(cfg), NullSink()
    runner = Runner("bench", trainer, sink, steps_per_second=None)
    watch = Stopwatch()
    watch.start()
    runner.start()
    sink.ended.wait()
    rate = watch.rate(steps)
    runner.join()
    assert sink.end is not None and sink.end["state"] == "finished", sink.end
    return rate


def _data(config: RunConfig):
    """The same arrays the engine trains on: features, and labels as the loss wants them."""
    d = Trainer(config.model_copy(update={"max_steps": 1})).data
    if d.spec.n_classes > 2:
        return d.x_train, d.y_train.astype(np.intp)
    return d.x_train, d.y_train.astype(np.float64).reshape(-1, 1)


def bare_rate(config: RunConfig, steps: int) -> Rate:
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
    watch = Stopwatch()
    watch.start()
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
    return watch.rate(steps)


def torch_rate(config: RunConfig, steps: int) -> Rate | None:
    """The same net in PyTorch (float64) on one CPU thread, or None when torch is absent."""
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
    watch = Stopwatch()
    watch.start()
    for step in range(steps):
        i = step % per_epoch
        if i == 0:
            order = torch.randperm(n, generator=gen)
        idx = order[i * batch : (i + 1) * batch]
        opt.zero_grad()
        loss = loss_fn(model(xt[idx]), yt[idx])
        loss.backward()
        opt.step()
    return watch.rate(steps)


CONTENDERS = {"engine": engine_rate, "bare numpy": bare_rate, "pytorch (1 thread)": torch_rate}


def compare(config: RunConfig, repeats: int, seconds: float) -> dict[str, list[Rate]]:
    """Interleaved rounds, each contender sized from a short calibration to run ~`seconds`."""
    calib = {k: f(config, 500) for k, f in CONTENDERS.items()}
    rates: dict[str, list[Rate]] = {k: [] for k in CONTENDERS if calib[k] is not None}
    for _ in range(repeats):
        for k in rates:
            steps = max(1000, int(calib[k].wall * seconds))
            rates[k].append(CONTENDERS[k](config, steps))
    return rates


def paired_ratio(rates: dict[str, list[Rate]], clock: str) -> float:
    """Median over rounds of engine/bare: a round's two timings share that moment's noise."""
    engine, bare = rates["engine"], rates["bare numpy"]
    return statistics.median(
        getattr(e, clock) / getattr(b, clock) for e, b in zip(engine, bare, strict=True)
    )


def rss() -> int:
    """Resident set size of this process in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def long_run(steps: int = LONG_STEPS) -> bool:
    """An unpaced Playground run of `steps`; RSS sampled as it goes must stay flat."""
    cfg = NETS["playground"].model_copy(
        update={"max_steps": steps, "steps_per_second": None, "stop_at_convergence": False}
    )
    before = rss()
    trainer, sink = Trainer(cfg), NullSink()
    runner = Runner("long", trainer, sink, steps_per_second=None)
    samples: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    runner.start()
    while not sink.ended.wait(0.5):
        samples.append((trainer.step, rss()))
    elapsed = time.perf_counter() - t0
    runner.join()
    after = rss()
    warm = [r for s, r in samples if s >= steps // 10] + [after]
    drift = max(warm) - min(warm)
    mib = 2**20
    print(f"long run: {steps:,} steps unpaced (playground net) in {elapsed:.0f} s wall")
    print(
        f"  RSS before the trainer {before / mib:.1f} MiB; from 10 % of the run to the end ", end=""
    )
    print(f"{min(warm) / mib:.1f} .. {max(warm) / mib:.1f} MiB ({len(warm)} samples), ", end="")
    print(f"after {after / mib:.1f} MiB")
    flat = drift <= RSS_TOLERANCE
    print(f"  drift {drift / 2**10:.0f} KiB: {'flat' if flat else 'GROWING'} ", end="")
    print(f"(tolerance {RSS_TOLERANCE / mib:.0f} MiB)\n")
    return flat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=1.0, help="rough length of each timing")
    parser.add_argument("--long", action="store_true", help="also a 1,000,000-step memory run")
    args = parser.parse_args()

    threads = os.environ["OPENBLAS_NUM_THREADS"]
    print(
        f"numpy {np.__version__}, python {sys.version.split()[0]}, BLAS threads {threads}, ", end=""
    )
    print(f"{args.repeats} interleaved rounds of ~{args.seconds:g} s each")
    # the long run first, so its RSS is the engine's own and not PyTorch's as well
    flat = long_run() if args.long else True
    ratios = {}
    for name, config in NETS.items():
        rates = compare(config, args.repeats, args.seconds)
        shape = " -> ".join(map(str, config.layers))
        print(f"\n{name}: {shape}, batch {config.batch_size}, {config.dataset}, ", end="")
        print(f"{config.activation}, {config.optimizer}    (median steps/s: wall | CPU time)")
        for k in CONTENDERS:
            if k not in rates:
                print(f"  {k:20s} not installed")
                continue
            wall = statistics.median(r.wall for r in rates[k])
            cpu = statistics.median(r.cpu for r in rates[k])
            print(f"  {k:20s} {wall:>9,.0f} | {cpu:>9,.0f}")
        ratios[name] = (paired_ratio(rates, "wall"), paired_ratio(rates, "cpu"))

    print()
    for name, (wall, cpu) in ratios.items():
        verdict = "ok" if cpu >= TARGET_RATIO else "BELOW TARGET"
        print(f"engine/bare {name}: {cpu:.2f} by CPU time, {wall:.2f} by wall clock ", end="")
        print(f"(target >= {TARGET_RATIO}) {verdict}")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
