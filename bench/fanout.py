"""Fan-out benchmark: one unpaced run streamed to many websocket viewers, against no viewers.

    .venv/bin/python bench/fanout.py                 # 200 viewers, 30 s windows
    .venv/bin/python bench/fanout.py --seconds 5     # a quick look

It starts the real server (uvicorn in a subprocess, free port, temporary data folder), then
1. trains one unpaced run with nobody watching and counts its steps over the window;
2. trains an identical run with N viewers (python `websockets` clients on loopback, in
   --client-procs processes) and counts again, while every viewer timestamps each frame.
It prints frames per viewer, p50/p99 latency from a step's server time (`beats.t`) to its
arrival, evictions, the server's RSS, and the training rate ratio it is judged on.
Targets: p99 <= 50 ms, zero evictions, training >= 0.9x its rate with no viewers.
"""

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
RUN = {"dataset": "spiral", "steps_per_second": None, "max_steps": 10_000_000, "seed": 1}
WARMUP = 2.0  # s of training before a window opens
LATENCY_BIN = 1e-4  # s: histogram resolution for per-step latencies
LATENCY_MAX = 60.0  # s: anything slower lands in the last bin
TARGET_P99 = 0.050  # s
TARGET_RATIO = 0.9


# -- the server process --------------------------------------------------------------


def serve(port: int, data: Path, viewers: int, switch_interval: float) -> None:
    """The app as `backbeat` serves it, with connection caps raised for one loopback host."""
    import uvicorn

    if switch_interval:
        sys.setswitchinterval(switch_interval)

    from app.server import create_app
    from app.settings import Settings

    settings = Settings(
        port=port,
        data_dir=data,
        max_connections=viewers + 50,
        max_connections_per_address=viewers + 50,
    )
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_max_size=settings.max_message_bytes,
        ws_ping_interval=10.0,
        ws_ping_timeout=10.0,
        ws_per_message_deflate=False,  # as app/cli.py serves it
    )


# -- viewer processes ----------------------------------------------------------------


class Viewers:
    """Many websocket viewers in one event loop; a frame is parsed once per process."""

    def __init__(self, url: str, n: int) -> None:
        self.url, self.n = url, n
        self.arrivals: list[list[tuple[int, float]]] = [[] for _ in range(n)]  # (seq, time)
        self.t_by_seq: dict[int, np.ndarray] = {}
        self.sizes: list[tuple[int, int]] = []  # (bytes, steps) of each distinct frame
        self.closed: dict[int, int] = {}  # viewer -> close code, if the server closed it
        self.window = (float("inf"), float("inf"))
        self.ready = 0

    async def viewer(self, i: int, all_ready: asyncio.Event) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        async with connect(self.url, max_size=None, open_timeout=60) as ws:
            await ws.recv()  # hello
            self.ready += 1
            if self.ready == self.n:
                all_ready.set()
            try:
                while True:
                    text = await ws.recv()
                    now = time.time()
                    if text.startswith('{"type":"ping"'):
                        await ws.send('{"type":"pong"}')
                        continue
                    if not text.startswith('{"type":"frame"'):
                        continue
                    seq = int(text[text.rindex('"seq":') + 6 : -1])  # `seq` comes last
                    if seq not in self.t_by_seq:
                        self.t_by_seq[seq] = np.array(json.loads(text)["beats"]["t"])
                        self.sizes.append((len(text), len(self.t_by_seq[seq])))
                    if self.window[0] <= now <= self.window[1]:
                        self.arrivals[i].append((seq, now))
            except ConnectionClosed as exc:
                if exc.rcvd is not None:
                    self.closed[i] = exc.rcvd.code

    async def main(self) -> dict:
        all_ready = asyncio.Event()
        tasks = []
        for i in range(self.n):  # connect in small bursts: the server's backlog is finite
            tasks.append(asyncio.create_task(self.viewer(i, all_ready)))
            if i % 20 == 19:
                await asyncio.sleep(0.05)
        await all_ready.wait()
        print("ready", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)  # "start end" of the window
        self.window = tuple(float(x) for x in line.split())
        await asyncio.sleep(max(0.0, self.window[1] - time.time()) + 0.5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return self.summary()

    def summary(self) -> dict:
        """Per-viewer frame counts, and a histogram of every delivered step's latency."""
        bins = np.zeros(int(LATENCY_MAX / LATENCY_BIN) + 1, dtype=np.int64)
        newest = []
        by_seq: dict[int, list[float]] = {}
        for arrivals in self.arrivals:
            for seq, now in arrivals:
                by_seq.setdefault(seq, []).append(now)
        for seq, times in by_seq.items():  # one histogram update per frame, all viewers at once
            t = self.t_by_seq[seq]
            lat = np.asarray(times)[:, None] - t[None, :]
            idx = np.clip((lat / LATENCY_BIN).astype(np.int64), 0, len(bins) - 1)
            bins += np.bincount(idx.ravel(), minlength=len(bins))
            newest.extend(lat[:, -1].tolist())
        return {
            "frames": [len(a) for a in self.arrivals],
            "latency_bins": {int(k): int(bins[k]) for k in np.flatnonzero(bins)},
            "newest": newest,
            "closed": self.closed,
            "sizes": self.sizes,
        }


def viewer_process(url: str, n: int) -> None:
    result = asyncio.run(Viewers(url, n).main())
    print(json.dumps(result), flush=True)


# -- the benchmark -------------------------------------------------------------------


def stalled_client(port: int, path: str) -> socket.socket:
    """A websocket client that completes the upgrade and then never reads a byte."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory, from /proc/<pid>/status."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base, timeout=30)
        self.loads: list[float] = []

    def step(self, run_id: str) -> tuple[float, int]:
        t0 = time.time()
        step = self.http.get(f"/api/runs/{run_id}").json()["step"]
        return (t0 + time.time()) / 2, step

    def training_rate(self, run_id: str, seconds: float) -> tuple[float, float, float]:
        """Steps per second over a window, and the server's CPU use (cores) in it."""
        (t0, s0), c0 = self.step(run_id), cpu_seconds(self.server.pid)
        time.sleep(seconds)
        (t1, s1), c1 = self.step(run_id), cpu_seconds(self.server.pid)
        self.loads.append(os.getloadavg()[0])  # other work on the machine skews both rates
        return (s1 - s0) / (t1 - t0), (c1 - c0) / (t1 - t0), t1 - t0

    def create(self, **extra) -> str:
        r = self.http.post("/api/runs", json={**RUN, "steps_per_second": self.args.tempo, **extra})
        r.raise_for_status()
        return r.json()["id"]

    def run(self) -> dict:
        a = self.args
        with tempfile.TemporaryDirectory(prefix="backbeat-bench-") as data:
            argv = [sys.executable, __file__, "--serve", str(self.port), data, str(a.viewers),
                    str(a.switch_interval)]  # fmt: skip
            self.server = subprocess.Popen(argv, cwd=REPO)
            try:
                return self.measure()
            finally:
                self.server.terminate()
                self.server.wait(15)

    def measure(self) -> dict:
        a = self.args
        deadline = time.monotonic() + 30
        while True:
            try:
                self.http.get("/api/health").raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

        alone = self.create()
        time.sleep(WARMUP)
        self.rate_alone, self.cpu_alone, _ = self.training_rate(alone, a.seconds)
        self.http.post(f"/api/runs/{alone}/control", json={"action": "stop"})

        watched = self.watch(a.viewers)
        if a.stalled:
            stalled = self.watch(a.viewers, stalled=a.stalled)
            watched["stalled"] = {
                "clients": a.stalled,
                "evicted_within_s": stalled.pop("stalled_evicted_s"),
                "p99_ms": stalled["latency_ms_every_step"]["p99"],
                "p99_rise_ms": stalled["latency_ms_every_step"]["p99"]
                - watched["latency_ms_every_step"]["p99"],
                "rss_mib": [watched["server_rss_mib"], stalled["server_rss_mib"]],
                "evicted_viewers": stalled["evicted"],
                "rate_watched": stalled["steps_per_s"]["watched"],
            }
        return watched

    def watch(self, viewers: int, stalled: int = 0) -> dict:
        """One run streamed to `viewers` clients (plus `stalled` ones that never read)."""
        a = self.args
        watched = self.create(start_paused=True)
        path = f"/ws/runs/{watched}"
        url = f"ws://127.0.0.1:{self.port}{path}"
        shares = [viewers // a.client_procs + (i < viewers % a.client_procs)
                  for i in range(a.client_procs)]  # fmt: skip
        clients = [
            subprocess.Popen(
                [sys.executable, __file__, "--viewers-of", url, str(n)],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in shares
        ]
        for c in clients:
            assert c.stdout.readline().strip() == "ready", "viewers could not connect"
        sockets = [stalled_client(self.port, path) for _ in range(stalled)]
        deadline = time.monotonic() + 30
        while (baseline := self.connections()) < viewers + stalled:  # every handshake done
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {baseline} of {viewers + stalled} clients connected")
            time.sleep(0.1)
        self.http.post(f"/api/runs/{watched}/control", json={"action": "resume"})
        resumed = time.monotonic()
        start = time.time() + WARMUP
        for c in clients:
            c.stdin.write(f"{start} {start + a.seconds}\n")
            c.stdin.flush()
        evicted_at: list[float] = []
        if stalled:  # watch the open-connection count fall back as the stalled ones go
            threading.Thread(
                target=self.await_evictions,
                args=(baseline - stalled, resumed, evicted_at),
                daemon=True,
            ).start()
        time.sleep(WARMUP)
        client_cpu0 = sum(cpu_seconds(c.pid) for c in clients)
        rate_watched, cpu_watched, span = self.training_rate(watched, a.seconds)
        client_cpu = (sum(cpu_seconds(c.pid) for c in clients) - client_cpu0) / span
        rss, peak = rss_mib(self.server.pid)
        results = [json.loads(c.communicate(timeout=120)[0]) for c in clients]
        self.http.post(f"/api/runs/{watched}/control", json={"action": "stop"})
        for s in sockets:
            s.close()
        sizes = np.array(results[0]["sizes"]).reshape(-1, 2)
        out = self.report(
            results,
            rate_alone=self.rate_alone,
            rate_watched=rate_watched,
            cpu_alone=self.cpu_alone,
            cpu_watched=cpu_watched,
            client_cpu=client_cpu,
            rss=rss,
            peak=peak,
            frame_kib=float(np.median(sizes[:, 0])) / 1024,
            steps_per_frame=float(np.median(sizes[:, 1])),
        )
        if stalled:
            out["stalled_evicted_s"] = evicted_at[0] if evicted_at else None
        return out

    def connections(self) -> int:
        return self.http.get("/api/health").json()["connections"]

    def await_evictions(self, target: int, since: float, found: list[float]) -> None:
        deadline = since + 60
        while time.monotonic() < deadline:
            if self.connections() <= target:
                found.append(time.monotonic() - since)
                return
            time.sleep(0.25)

    def report(self, results: list[dict], **m) -> dict:
        a = self.args
        frames = np.array([f for r in results for f in r["frames"]])
        bins = np.zeros(int(LATENCY_MAX / LATENCY_BIN) + 1, dtype=np.int64)
        for r in results:
            for k, v in r["latency_bins"].items():
                bins[int(k)] += v
        cdf = np.cumsum(bins) / max(bins.sum(), 1)

        def pct(q: float) -> float:
            return float(np.searchsorted(cdf, q) + 1) * LATENCY_BIN

        newest = np.array([x for r in results for x in r["newest"]])
        evicted = sum(1 for r in results for code in r["closed"].values() if code == 4008)
        other_closes = sum(1 for r in results for code in r["closed"].values() if code != 4008)
        ratio = m["rate_watched"] / m["rate_alone"]
        out = {
            "viewers": a.viewers,
            "client_procs": a.client_procs,
            "window_s": a.seconds,
            "frames_per_viewer": {
                "min": int(frames.min()),
                "median": float(np.median(frames)),
                "max": int(frames.max()),
                "per_s": float(np.median(frames)) / a.seconds,
            },
            "latency_ms_every_step": {"p50": pct(0.5) * 1e3, "p99": pct(0.99) * 1e3},
            "latency_ms_newest_step": {
                "p50": float(np.percentile(newest, 50)) * 1e3 if len(newest) else None,
                "p99": float(np.percentile(newest, 99)) * 1e3 if len(newest) else None,
            },
            "evicted": evicted,
            "other_closes": other_closes,
            "server_rss_mib": round(m["rss"], 1),
            "server_peak_rss_mib": round(m["peak"], 1),
            "server_cpu_cores": {"alone": m["cpu_alone"], "watched": m["cpu_watched"]},
            "client_cpu_cores": m["client_cpu"],
            "frame_kib_median": round(m["frame_kib"], 1),
            "steps_per_frame_median": m["steps_per_frame"],
            "steps_per_s": {"alone": m["rate_alone"], "watched": m["rate_watched"]},
            "ratio": ratio,
            "load_avg_1min": {"alone": self.loads[0], "watched": self.loads[1]},
        }
        p99 = out["latency_ms_every_step"]["p99"] / 1e3
        out["verdict"] = {
            "p99<=50ms": p99 <= TARGET_P99,
            "zero evictions": evicted == 0,
            "ratio>=0.9": ratio >= TARGET_RATIO,
        }
        return out


def print_report(r: dict) -> None:
    f, le, ln = r["frames_per_viewer"], r["latency_ms_every_step"], r["latency_ms_newest_step"]
    print(f"viewers            {r['viewers']} in {r['client_procs']} client process(es), "
          f"{r['window_s']:g} s window")  # fmt: skip
    print(f"frames per viewer  min {f['min']}  median {f['median']:g}  max {f['max']}"
          f"  ({f['per_s']:.1f}/s)")  # fmt: skip
    print(f"latency, every step   p50 {le['p50']:.1f} ms  p99 {le['p99']:.1f} ms")
    if ln["p50"] is not None:
        print(f"latency, newest step  p50 {ln['p50']:.1f} ms  p99 {ln['p99']:.1f} ms")
    print(f"evicted viewers    {r['evicted']}  (other closes: {r['other_closes']})")
    print(f"server RSS         {r['server_rss_mib']} MiB (peak {r['server_peak_rss_mib']} MiB)")
    c = r["server_cpu_cores"]
    print(f"server CPU         {c['alone']:.2f} cores alone, {c['watched']:.2f} watched;"
          f" clients {r['client_cpu_cores']:.2f} cores")  # fmt: skip
    s = r["steps_per_s"]
    print(f"training           {s['alone']:.0f} steps/s alone, {s['watched']:.0f} watched"
          f"  -> ratio {r['ratio']:.3f}")  # fmt: skip
    la = r["load_avg_1min"]
    print(f"machine load       {la['alone']:.2f} after the lone window, {la['watched']:.2f}"
          f" after the watched one ({os.cpu_count()} CPUs)")  # fmt: skip
    print(f"frames             median {r['frame_kib_median']} KiB carrying"
          f" {r['steps_per_frame_median']:g} steps")  # fmt: skip
    if st := r.get("stalled"):
        ev = st["evicted_within_s"]
        print(
            f"stalled clients    {st['clients']}: all gone "
            + (f"{ev:.1f} s after the run resumed" if ev is not None else "NOT within 60 s")
        )
        print(f"  with them        p99 {st['p99_ms']:.1f} ms ({st['p99_rise_ms']:+.1f} ms),"
              f" RSS {st['rss_mib'][0]} -> {st['rss_mib'][1]} MiB,"
              f" viewers evicted {st['evicted_viewers']},"
              f" training {st['rate_watched']:.0f} steps/s")  # fmt: skip
    print("targets            " + ", ".join(f"{k}: {'ok' if v else 'MISSED'}"
                                            for k, v in r["verdict"].items()))  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        port, data, viewers, switch_interval = sys.argv[2:6]
        serve(int(port), Path(data), int(viewers), float(switch_interval))
        return
    if sys.argv[1:2] == ["--viewers-of"]:
        viewer_process(sys.argv[2], int(sys.argv[3]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--viewers", type=int, default=200)
    p.add_argument("--seconds", type=float, default=30.0, help="length of each window")
    p.add_argument("--client-procs", type=int, default=1, help="viewer processes (1 or 2)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    p.add_argument("--tempo", type=float, default=None, help="pace the runs (default: unpaced)")
    p.add_argument(
        "--stalled",
        type=int,
        default=0,
        help="then repeat with this many extra clients that connect and never read",
    )
    p.add_argument(
        "--switch-interval", type=float, default=0.0, help="server's GIL switch interval, s"
    )
    args = p.parse_args()
    result = Bench(args).run()
    print_report(result)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
