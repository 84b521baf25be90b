"""The client's overhead: a PyTorch MLP trained with and without `watch` + `log` every step.

    .venv/bin/python bench/client.py                 # against a real server (started here)
    .venv/bin/python bench/client.py --server-down   # nothing listens: steps are dropped
    .venv/bin/python bench/client.py --update-ratios # watch(model, optimizer): ratios too
    .venv/bin/python bench/client.py --every 1       # echoes and entropy on every step
    .venv/bin/python bench/client.py --pin           # server on CPU 1, this process on CPU 0

Digits 64 → 128 → 10, batch 32, SGD, on the CPU with one thread. Each round trains a
plain loop, a watched one and a second plain one, in an order that rotates from round to
round, and takes the watched/plain ratio in wall-clock and in process CPU time (the
sender thread's included); the figure judged is the median wall-clock ratio over the
rounds (target ≤ 1.05). The second plain loop gives the noise floor of the same rounds:
its plain/plain ratio would be 1.000 on a perfectly steady machine (41 rounds of 1,000
steps keep it within about ±1.5 % here; 11 rounds of 2,000 steps did not). The
server runs in its own process (as `backbeat` would), so its work is not on our GIL;
by default it shares both cores with training (and with whatever else the machine
runs); `--pin` puts it on CPU 1 and this process (training, sender thread and all) on
CPU 0, as on a machine with a core to spare.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import backbeat  # noqa: E402
from app.engine.datasets import make_dataset  # noqa: E402
from backbeat.local import answers  # noqa: E402

torch.set_num_threads(1)
DOWN = "/"  # a server-down URL ends so (nothing listens at its port)


def cpu_seconds(pid: int, thread: int | None = None) -> float | None:
    """User + system CPU time of a process, or of one of its threads (Linux), None where
    /proc is not there. Counted in clock ticks (10 ms): meaningful over a whole round."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    ds = make_dataset("digits", n_samples=1797, noise=0.0, train_ratio=0.9, seed=0)
    return torch.tensor(ds.x_train, dtype=torch.float32), torch.tensor(ds.y_train).long()


WARM_STEPS = 50  # untimed first steps: the first forward, run creation, connection


def train(steps: int, x, y, url: str | None, ratios: bool = False, every=None):
    """(wall s, CPU s, cadence, dropped, median step s, sender thread CPU s) for `steps`
    SGD steps; with `url`, watched and logged.

    Both loops first take WARM_STEPS untimed steps; the watched one then waits until its
    sender is connected, so what is timed is the steady state, not the one-off start.
    CPU time is this process's (the sender thread's included), so work moved to the
    background thread still counts.
    """
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    run = None
    if url is not None:
        run = backbeat.init(name="bench", server=url, start_server=False, measure_every=every)
        run.watch(model, opt if ratios else None)
    n = len(x)

    durations: list[float] = []
    clock = time.perf_counter

    def loop(first: int, last: int) -> None:
        for step in range(first, last):
            t0 = clock()
            lo = (step * 32) % (n - 32)
            xb, yb = x[lo : lo + 32], y[lo : lo + 32]
            opt.zero_grad()
            logits = model(xb)
            loss = torch.nn.functional.cross_entropy(logits, yb)
            loss.backward()
            opt.step()
            if run is not None:
                run.log({"loss": loss}, logits=logits)
            durations.append(clock() - t0)

    loop(0, WARM_STEPS)
    durations.clear()
    if run is not None and not url.endswith(DOWN):
        run._sender.connected.wait(10)
    sender = run._sender.native_id if run is not None else None
    sent = cpu_seconds(os.getpid(), sender) if sender else None
    began, cpu = time.perf_counter(), time.process_time()
    loop(WARM_STEPS, WARM_STEPS + steps)
    took, cpu = time.perf_counter() - began, time.process_time() - cpu
    cadence = dropped = None
    if sent is not None:
        sent = cpu_seconds(os.getpid(), sender) - sent
    if run is not None:
        cadence = run._cadence.every
        run.finish(timeout=30)
        dropped = run.dropped
    return took, cpu, cadence, dropped, statistics.median(durations), sent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=41)
    p.add_argument("--server-down", action="store_true")
    p.add_argument("--update-ratios", action="store_true", help="give watch the optimizer")
    p.add_argument("--every", type=int, default=None, help="measure_every (default: adaptive)")
    p.add_argument(
        "--pin", action="store_true", help="server on CPU 1, this process on CPU 0 (Linux)"
    )
    args = p.parse_args()
    load_before = os.getloadavg()[0]
    x, y = digits()
    server = None
    if args.server_down:
        url = f"http://127.0.0.1:{free_port()}{DOWN}"  # nothing listens there
    else:
        port, data = free_port(), tempfile.mkdtemp()
        cmd = [sys.executable, "-m", "app.web.cli", "--port", str(port), "--data", data]
        server = subprocess.Popen([*cmd, "--no-browser"], cwd=ROOT, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        if args.pin:
            os.sched_setaffinity(server.pid, {1})
        deadline = time.monotonic() + 30
        while not answers(url):
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
    if args.pin:
        os.sched_setaffinity(0, {0})  # before any thread starts: they all inherit it
    try:
        train(200, x, y, None)  # warm-up
        plain, logged, wall_ratios, cpu_ratios, cadences, dropped = [], [], [], [], [], 0
        step_ratios = []  # median step time, watched / plain: robust to preemption spikes
        server_cpu = []  # server CPU s per watched step (its idle plain round included)
        sender_cpu = []  # the sender thread's CPU s per watched step
        floor = []  # the second plain loop over the first: the noise of these rounds
        kinds = ("plain", "watched", "again")
        for i in range(args.rounds):
            order = kinds[i % 3 :] + kinds[: i % 3]  # each loop first, second and last in turn
            took = {}
            before = cpu_seconds(server.pid) if server is not None else None
            for kind in order:
                took[kind] = train(
                    args.steps,
                    x,
                    y,
                    url if kind == "watched" else None,
                    args.update_ratios,
                    args.every,
                )
            base, watched = took["plain"], took["watched"]
            floor.append(took["again"][0] / base[0])
            plain.append(base[0])
            logged.append(watched[0])
            wall_ratios.append(watched[0] / base[0])
            cpu_ratios.append(watched[1] / base[1])
            cadences.append(watched[2])
            dropped += watched[3]
            step_ratios.append(watched[4] / base[4])
            if watched[5] is not None:
                sender_cpu.append(watched[5] / args.steps)
            if before is not None:
                server_cpu.append((cpu_seconds(server.pid) - before) / args.steps)
        mp, ml = statistics.median(plain), statistics.median(logged)
        mode = "server down" if args.server_down else "server up"
        mode += ", with update ratios" if args.update_ratios else ""
        mode += f", measure_every={args.every}" if args.every else ", adaptive cadence"
        mode += (
            ", pinned: server on CPU 1, training on CPU 0"
            if args.pin
            else f", server and training share the machine's {os.cpu_count()} cores"
        )
        print(f"client overhead ({mode}), {args.steps} steps x {args.rounds} rounds, median:")
        print(f"  plain loop      {mp * 1e6 / args.steps:8.1f} µs/step (wall)")
        print(f"  watch + log     {ml * 1e6 / args.steps:8.1f} µs/step (wall)")
        print(f"  measured every  {sorted(set(cadences))} steps (the cadence at each round's end)")
        print(
            f"  ratio watched/plain: {statistics.median(wall_ratios):.3f} wall, "
            f"{statistics.median(cpu_ratios):.3f} CPU  (target ≤ 1.05)"
        )
        print(f"  noise floor, plain/plain in the same rounds: {statistics.median(floor):.3f} wall")
        print(
            f"  median step (train + log; measured steps are rare, so this is the common step): "
            f"{statistics.median(step_ratios):.3f}"
        )
        if sender_cpu:
            print(
                f"  sender thread CPU {statistics.median(sender_cpu) * 1e6:.1f} µs per step "
                "(in the CPU ratio; 10 ms clock ticks)"
            )
        if server_cpu:
            print(
                f"  server process CPU {statistics.median(server_cpu) * 1e6:.1f} µs per step "
                "(another process: it competes with training only for a busy core)"
            )
        print(
            f"  steps dropped: {dropped}; load average (1 min) {load_before:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
