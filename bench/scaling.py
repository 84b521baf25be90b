"""Cross-process latency: one run trained by web process A, watched on A and on B via Redis.

    .venv/bin/python bench/scaling.py                    # 20 viewers on each, 20 s, 200 steps/s
    .venv/bin/python bench/scaling.py --viewers 50 --seconds 10 --tempo 0

It starts Debian's redis-server on a free port (no persistence) and two `backbeat --broker`
processes on one data folder, creates a run on A, connects the same number of `?detail=full`
viewers to each, and measures for every step the time from its server time (`beats.t`) to
its arrival, per process: p50/p99, B's extra latency (the hop through Redis) side by side.
`--tempo 0` trains unpaced (audience frames then summarise: measured from the oldest step).
"""

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.web.devserver import ServerProcess, backbeat_command, free_port, wait_until  # noqa: E402


async def watch(url: str, until: float, latencies: list[float]) -> int:
    from websockets.asyncio.client import connect

    frames = 0
    async with connect(url, max_size=None, open_timeout=60) as ws:
        await ws.recv()  # hello
        while (left := until - time.time()) > 0:
            try:
                text = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            now = time.time()
            if text.startswith('{"type":"ping"'):
                await ws.send('{"type":"pong"}')
            elif text.startswith('{"type":"frame"'):
                frame = json.loads(text)
                t = frame["beats"]["t"] if "beats" in frame else [frame["summary"]["t"][1]]
                latencies.extend(now - np.asarray(t))
                frames += 1
    return frames


async def measure(a: ServerProcess, b: ServerProcess, run_id: str, n: int, seconds: float):
    until = time.time() + seconds
    results = {}
    jobs = []
    for name, server in (("A (trains the run)", a), ("B (through Redis)", b)):
        url = f"{server.ws_url}/ws/runs/{run_id}?detail=full"
        results[name] = []
        jobs += [watch(url, until, results[name]) for _ in range(n)]
    frames = await asyncio.gather(*jobs)
    return results, frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--viewers", type=int, default=20, help="viewers on each process")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--tempo", type=float, default=200.0, help="steps per second; 0 = unpaced")
    args = p.parse_args()
    redis_server = shutil.which("redis-server")
    if not redis_server:
        sys.exit("bench/scaling.py needs Debian's redis-server (make redis)")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        redis = subprocess.Popen(
            [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
        servers = []
        try:
            argv = [*backbeat_command(), "--port", "{port}", "--no-browser", "--data", tmp]
            argv += ["--broker", f"redis://127.0.0.1:{port}/0"]
            servers = [ServerProcess(argv, Path(tmp)).start() for _ in range(2)]
            for server in servers:
                server.wait_healthy()
            a, b = servers
            config = {
                "dataset": "spiral",
                "seed": 1,
                "max_steps": 10_000_000,
                "stop_at_convergence": False,
            }
            config["steps_per_second"] = args.tempo or None
            run_id = httpx.post(f"{a.url}/api/runs", json=config, timeout=30).json()["id"]
            wait_until(lambda: httpx.get(f"{b.url}/api/runs/{run_id}").json()["step"] > 10, 30, "b")
            results, frames = asyncio.run(measure(a, b, run_id, args.viewers, args.seconds))
        finally:
            for server in servers:
                server.close()
            redis.kill()
            redis.wait(10)
    tempo = f"{args.tempo:g} steps/s" if args.tempo else "unpaced"
    print(f"{args.viewers} viewers on each of 2 processes, {args.seconds:g} s, {tempo}")
    p50s = {}
    for i, (name, lat) in enumerate(results.items()):
        lat = np.asarray(lat) * 1000
        mine = frames[i * args.viewers : (i + 1) * args.viewers]
        if not len(lat):
            print(f"  {name:20s} no frames arrived within the window")
            return
        p50s[name] = np.percentile(lat, 50)
        print(
            f"  {name:20s} frames/viewer {np.median(mine):6.0f}   step latency "
            f"p50 {np.percentile(lat, 50):6.1f} ms   p99 {np.percentile(lat, 99):6.1f} ms"
        )
    a_p50, b_p50 = p50s.values()
    print(f"  B - A, p50: {b_p50 - a_p50:+.1f} ms")


if __name__ == "__main__":
    main()
