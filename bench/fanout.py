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
import base64
import json
import os
import select
import shutil
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
sys.path.insert(0, str(REPO))

from app.web.devserver import START_TIMEOUT, free_port, wait_until  # noqa: E402

RUN = {
    "dataset": "spiral",
    "steps_per_second": None,
    "max_steps": 10_000_000,
    "seed": 1,
    "stop_at_convergence": False,  # plays on after its chime: the window never ends it
}
WARMUP = 2.0  # s of training before a window opens
LATENCY_BIN = 1e-4  # s: histogram resolution for per-step latencies
LATENCY_MAX = 60.0  # s: anything slower lands in the last bin
TARGET_P99 = 0.050  # s
TARGET_RATIO = 0.9
RSS_EVERY = 0.25  # s between samples of the server's RSS while a run is watched


# -- the server process --------------------------------------------------------------


def serve(
    port: int,
    data: Path,
    viewers: int,
    switch_interval: float,
    audience_share: float,
    trace: str = "",
    nagle: bool = False,
) -> None:
    """The app as `backbeat` serves it, with connection caps raised for one loopback host."""
    import uvicorn

    if nagle:  # as before session 6: asyncio left Nagle on for the listener's connections
        import asyncio.base_events

        asyncio.base_events._set_nodelay = lambda sock: None

    if trace:
        from bench import fanout_trace

        fanout_trace.install(Path(trace))

    if switch_interval:
        sys.setswitchinterval(switch_interval)
    if audience_share:
        from app.live import channel

        channel.AUDIENCE_SHARE = audience_share

    from app.web.listen import listening_socket
    from app.web.server import create_app
    from app.web.settings import Settings

    settings = Settings(
        port=port,
        data_dir=data,
        max_connections=viewers + 50,
        max_connections_per_address=viewers + 50,
    )
    config = uvicorn.Config(  # as app/web/cli.py serves it
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        ws_max_size=settings.max_message_bytes,
        ws_ping_interval=10.0,
        ws_ping_timeout=10.0,
        ws_per_message_deflate=False,
    )
    uvicorn.Server(config).run(sockets=[listening_socket("127.0.0.1", port)])


# -- viewer processes ----------------------------------------------------------------


PONG = b"\x81\x8f\x00\x00\x00\x00" + b'{"type":"pong"}'  # masked (with a zero key)


class Watcher:
    """One viewer as a bare websocket client: it frames, answers pings and timestamps.

    A `websockets` client costs tens of microseconds of Python per message, and an asyncio
    protocol several more per read; 1,000 viewers at ~60 reads a second each would need
    more than the client's core, and then the bench measures its own clients. This one
    is a non-blocking socket read from one epoll loop, and only splits bytes into frames.
    """

    def __init__(self, swarm: "Viewers", i: int) -> None:
        self.swarm, self.i = swarm, i
        self.buf = bytearray()
        self.upgraded = self.greeted = False
        self.sock = socket.create_connection((swarm.host, swarm.port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {swarm.path} HTTP/1.1\r\nHost: {swarm.host}:{swarm.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.sock.setblocking(False)

    def readable(self, now: float) -> bool:
        """Take what the socket has; False once the connection is over."""
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            self.swarm.closed.setdefault(self.i, 1006)  # dropped without a close frame
            return False
        if self.swarm.window[0] <= now <= self.swarm.window[1]:
            self.swarm.reads += 1
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return True
            assert buf.startswith(b"HTTP/1.1 101"), bytes(buf[:80])
            del buf[: end + 4]
            self.upgraded = True
        at, size = 0, len(buf)
        while size - at >= 2:
            opcode, n, head = buf[at] & 0x0F, buf[at + 1] & 0x7F, 2
            if n == 126:
                if size - at < 4:
                    break
                n, head = int.from_bytes(buf[at + 2 : at + 4], "big"), 4
            elif n == 127:
                if size - at < 10:
                    break
                n, head = int.from_bytes(buf[at + 2 : at + 10], "big"), 10
            if size - at < head + n:
                break
            if not self.message(opcode, bytes(buf[at + head : at + head + n]), now):
                return False
            at += head + n
        del buf[:at]
        return True

    def message(self, opcode: int, payload: bytes, now: float) -> bool:
        if opcode == 0x9:  # uvicorn's keepalive ping: answer with its payload
            self.sock.send(bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload)
        elif opcode == 0x8:
            self.swarm.closed[self.i] = int.from_bytes(payload[:2], "big") if payload else 1005
            return False
        elif not self.greeted:  # the hello
            self.greeted = True
            self.swarm.ready += 1
        elif payload.startswith(b'{"type":"ping"'):
            self.sock.send(PONG)
        elif payload.startswith(b'{"type":"frame"'):
            self.swarm.frame(self.i, payload, now)
        return True


class Viewers:
    """Many bare websocket viewers in one epoll loop; a frame is parsed once per process."""

    def __init__(self, url: str, n: int) -> None:
        self.url, self.n = url, n
        where, path = url.removeprefix("ws://").split("/", 1)
        self.host, port = where.split(":")
        self.port, self.path = int(port), "/" + path
        self.counts = [0] * n  # frames each viewer received in the window
        self.by_seq: dict[int, list[float]] = {}  # arrival times of each frame, all viewers
        self.t_by_seq: dict[int, np.ndarray] = {}
        self.summarised: dict[int, bool] = {}
        self.sizes: list[tuple[int, int]] = []  # (bytes, steps) of each distinct frame
        self.closed: dict[int, int] = {}  # viewer -> close code, if the server closed it
        self.window = (float("inf"), float("inf"))
        self.ready = 0
        self.reads = 0  # socket reads with data in the window, all viewers

    def frame(self, i: int, payload: bytes, now: float) -> None:
        seq = int(payload[payload.rindex(b'"seq":') + 6 : -1])  # `seq` comes last
        if seq not in self.t_by_seq:
            frame = json.loads(payload)
            self.t_by_seq[seq], steps = step_times(frame)
            self.summarised[seq] = "summary" in frame
            self.sizes.append((len(payload), steps))
        if self.window[0] <= now <= self.window[1]:
            self.counts[i] += 1
            times = self.by_seq.get(seq)
            if times is None:
                times = self.by_seq[seq] = []
            times.append(now)

    def main(self) -> dict:
        poll, watchers = select.epoll(), {}
        for i in range(self.n):  # connect in small bursts: the server's backlog is finite
            w = Watcher(self, i)
            watchers[w.sock.fileno()] = w
            poll.register(w.sock.fileno(), select.EPOLLIN)
            if i % 20 == 19:
                self.serve(poll, watchers, 0.05)
        deadline = time.monotonic() + 120
        while self.ready < self.n:
            assert time.monotonic() < deadline, f"only {self.ready} of {self.n} hellos"
            self.serve(poll, watchers, 0.1)
        print("ready", flush=True)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(sys.stdin.readline()), daemon=True)
        reader.start()
        while not line:  # keep reading (and answering pings) until the window is known
            self.serve(poll, watchers, 0.1)
        self.window = tuple(float(x) for x in line[0].split())
        while time.time() < self.window[1] + 0.5:
            self.serve(poll, watchers, 0.1)
        for w in watchers.values():
            w.sock.close()
        return self.summary()

    def serve(self, poll, watchers: dict, timeout: float) -> None:
        for fd, _ in poll.poll(timeout):
            if not watchers[fd].readable(time.time()):
                poll.unregister(fd)
                watchers[fd].sock.close()

    def summary(self) -> dict:
        return summary(
            self.by_seq, self.t_by_seq, self.summarised, self.counts, self.sizes,
            self.closed, self.reads,
        )  # fmt: skip


def summary(by_seq, t_by_seq, summarised, counts, sizes, closed, reads) -> dict:
    """Per-viewer frame counts, and a histogram of every delivered step's latency.

    `by_seq`: each frame's arrival times at all viewers (in the window); `t_by_seq`, its
    steps' server times (`step_times`); `summarised`: whether it was a summary."""
    bins = np.zeros(int(LATENCY_MAX / LATENCY_BIN) + 1, dtype=np.int64)
    newest = []
    for seq, times in by_seq.items():  # one histogram update per frame, all viewers
        t = t_by_seq[seq]
        lat = np.asarray(times)[:, None] - t[None, :]
        every = lat[:, :1] if summarised.get(seq) else lat  # a summary: its oldest step
        idx = np.clip((every / LATENCY_BIN).astype(np.int64), 0, len(bins) - 1)
        bins += np.bincount(idx.ravel(), minlength=len(bins))
        newest.extend(lat[:, -1].tolist())
    return {
        "frames": counts,
        "latency_bins": {int(k): int(bins[k]) for k in np.flatnonzero(bins)},
        "newest": newest,
        "closed": closed,
        "sizes": sizes,
        "reads": reads,
        # each frame's oldest step time, and when its first and last viewer had it
        "arrivals": [
            [float(t_by_seq[seq][0]), min(times), max(times)] for seq, times in by_seq.items()
        ],
    }


def c_swarm_summary(out: Path, n: int) -> dict:
    """`summary` of what bench/swarm.c wrote to `out`."""
    rows = np.fromfile(
        out / "arrivals.bin", dtype=[("seq", "<i4"), ("viewer", "<i4"), ("t", "<f8")]
    )
    data, at = (out / "frames.bin").read_bytes(), 0
    t_by_seq, summarised, sizes = {}, {}, []
    while at < len(data):
        seq, size = np.frombuffer(data, "<i4", 2, at)
        frame = json.loads(data[at + 8 : at + 8 + size])
        t_by_seq[int(seq)], steps = step_times(frame)
        summarised[int(seq)] = "summary" in frame
        sizes.append((int(size), steps))
        at += 8 + int(size)
    by_seq: dict[int, list[float]] = {}
    order = np.argsort(rows["seq"], kind="stable")
    seqs, starts = np.unique(rows["seq"][order], return_index=True)
    for seq, times in zip(seqs, np.split(rows["t"][order], starts[1:]), strict=True):
        by_seq[int(seq)] = times.tolist()
    counts = np.bincount(rows["viewer"], minlength=n).tolist()
    closed = {}
    for line in (out / "closes.txt").read_text().splitlines():
        i, code = line.split()
        closed[int(i)] = int(code)
    reads = int((out / "stats.txt").read_text().split()[1])
    return summary(by_seq, t_by_seq, summarised, counts, sizes, closed, reads)


def build_swarm(folder: Path) -> Path:
    """bench/swarm.c compiled with the system's cc (`--swarm c`)."""
    binary = folder / "swarm"
    cmd = ["cc", "-O2", "-o", str(binary), str(REPO / "bench" / "swarm.c")]
    try:
        subprocess.run(cmd, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"--swarm c needs a C compiler (apt-get install -y gcc): {exc}") from exc
    return binary


def step_times(frame: dict) -> tuple[np.ndarray, int]:
    """Server times to measure a frame's latency from (newest last), and its step count.

    A full frame gives every step's `t`. An audience summary gives its oldest step's
    (`summary.t[1]`, the min) and its newest's (`summary.t[3]`, the last): the oldest step
    waited longest, so "every step" percentiles over summaries are an upper bound on every step's.
    """
    if "summary" in frame:
        s = frame["summary"]
        return np.array([s["t"][1], s["t"][3]]), frame["count"]
    return np.array(frame["beats"]["t"]), len(frame["beats"]["t"])


def viewer_process(url: str, n: int) -> None:
    result = Viewers(url, n).main()
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


def pin(pid: int, cpu: int) -> None:
    """Every thread of `pid` on `cpu` (threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every living process below `pid` (the forkserver and the training children)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            kids = [int(k) for k in (task / "children").read_text().split()]
            found.extend(kids)
            todo.extend(kids)
    return found


def cpu_busy() -> list[float]:
    """Busy CPU seconds of each CPU since boot (all but idle and iowait), from /proc/stat."""
    tick, out = os.sysconf("SC_CLK_TCK"), []
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            v = [int(x) for x in values]
            out.append((sum(v[:8]) - v[3] - v[4]) / tick)
    return out


def rss_mib(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory, from /proc/<pid>/status."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def placement(args: argparse.Namespace) -> dict[str, int]:
    """Which CPU the server, the training children and the clients are pinned to, if any."""
    layout = "server=0,training=0,clients=1" if args.pin else args.cpus
    cpus = {}
    for part in filter(None, layout.split(",")):
        who, cpu = part.split("=")
        assert who in ("server", "training", "clients"), who
        cpus[who] = int(cpu)
    return cpus


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base, timeout=30)
        self.loads: list[float] = []
        self.cpus = placement(args)
        self.swarm: Path | None = None  # the C viewers' binary (`--swarm c`)
        self.windows: dict[str, tuple[float, float]] = {}  # each watched window, for --trace
        self.arrivals: dict[str, list] = {}  # and its frames' arrivals

    def healthy(self) -> bool:
        if self.server.poll() is not None:
            raise SystemExit(f"the bench server exited with {self.server.returncode}")
        try:
            return self.http.get("/api/health").status_code == 200
        except httpx.TransportError:
            return False

    def step(self, run_id: str) -> tuple[float, int]:
        t0 = time.time()
        step = self.http.get(f"/api/runs/{run_id}").json()["step"]
        return (t0 + time.time()) / 2, step

    def training_rate(self, run_id: str, seconds: float) -> tuple[float, float, float]:
        """Steps per second over a window, and the server's CPU use (cores) in it.

        It also keeps, in `self.cpu`, the CPU (cores) of the training processes (the
        server's descendants) and each CPU's busy share from /proc/stat, whoever used it.
        """
        server, kids = self.server.pid, descendants(self.server.pid)
        (t0, s0), c0 = self.step(run_id), cpu_seconds(server)
        k0, b0 = sum(cpu_seconds(k) for k in kids), cpu_busy()
        time.sleep(seconds)
        (t1, s1), c1 = self.step(run_id), cpu_seconds(server)
        k1, b1 = sum(cpu_seconds(k) for k in kids), cpu_busy()
        self.loads.append(os.getloadavg()[0])  # other work on the machine skews both rates
        span = t1 - t0
        self.cpu = {
            "training": (k1 - k0) / span,
            "busy": [(b - a) / span for a, b in zip(b0, b1, strict=True)],
        }
        return (s1 - s0) / span, (c1 - c0) / span, span

    def create(self, **extra) -> str:
        r = self.http.post("/api/runs", json={**RUN, "steps_per_second": self.args.tempo, **extra})
        r.raise_for_status()
        if "training" in self.cpus:  # the forkserver and its training children
            for kid in descendants(self.server.pid):
                pin(kid, self.cpus["training"])
        return r.json()["id"]

    def run(self) -> dict:
        a = self.args
        with tempfile.TemporaryDirectory(prefix="backbeat-bench-") as data:
            if a.swarm == "c":
                self.swarm = build_swarm(Path(data))
            trace = str(Path(data) / "trace.json") if a.trace else ""
            argv = [sys.executable, __file__, "--serve", str(self.port), data, str(a.viewers),
                    str(a.switch_interval), str(a.audience_share), trace,
                    str(int(a.nagle))]  # fmt: skip
            self.server = subprocess.Popen(argv, cwd=REPO)
            if "server" in self.cpus:  # (and the training children it forks, until moved)
                os.sched_setaffinity(self.server.pid, {self.cpus["server"]})
            try:
                result = self.measure()
            finally:
                self.server.terminate()
                self.server.wait(15)
            if trace:
                from bench import fanout_trace

                for name, (since, until) in self.windows.items():
                    print(f"-- {name} window")
                    fanout_trace.summarise(Path(trace), since, until, self.arrivals[name])
            return result

    def measure(self) -> dict:
        a = self.args
        wait_until(self.healthy, START_TIMEOUT, f"{self.base}/api/health")

        alone = self.create()
        time.sleep(WARMUP)
        self.rate_alone, self.cpu_alone, _ = self.training_rate(alone, a.seconds)
        self.cpu_lone_window = self.cpu
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
                "rss_watched_mib": [watched["rss_watched_mib"], stalled["rss_watched_mib"]],
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
        outs = [Path(tempfile.mkdtemp(prefix="backbeat-swarm-")) for _ in shares]
        clients = [
            subprocess.Popen(
                [str(self.swarm), "127.0.0.1", str(self.port), path, str(n), str(out)]
                if self.swarm
                else [sys.executable, __file__, "--viewers-of", url, str(n)],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n, out in zip(shares, outs, strict=True)
        ]
        if "clients" in self.cpus:
            for c in clients:
                os.sched_setaffinity(c.pid, {self.cpus["clients"]})
        if a.clients_nice:  # e.g. -10: the swarm reads at once even beside the training child
            for c in clients:
                os.setpriority(os.PRIO_PROCESS, c.pid, a.clients_nice)
        if a.batch_clients:  # the swarm never preempts the server or the training child
            for c in clients:
                os.sched_setscheduler(c.pid, os.SCHED_BATCH, os.sched_param(0))
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
        rss_series: list[float] = []  # from the resume to the window's end
        sampler = threading.Thread(
            target=self.sample_rss, args=(resumed + 2 * WARMUP + a.seconds, rss_series)
        )
        sampler.start()
        start = time.time() + WARMUP
        self.windows["stalled" if stalled else "watched"] = (start, start + a.seconds)
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
        sampler.join()
        replies = [c.communicate(timeout=120)[0] for c in clients]
        if self.swarm:
            assert all(r.strip() == "done" for r in replies), replies
            results = [c_swarm_summary(o, n) for o, n in zip(outs, shares, strict=True)]
        else:
            results = [json.loads(r) for r in replies]
        for o in outs:
            shutil.rmtree(o)
        self.http.post(f"/api/runs/{watched}/control", json={"action": "stop"})
        for s in sockets:
            s.close()
        self.arrivals["stalled" if stalled else "watched"] = [
            row for r in results for row in r.pop("arrivals")
        ]
        sizes = np.array(results[0]["sizes"]).reshape(-1, 2)
        out = self.report(
            results,
            rate_alone=self.rate_alone,
            rate_watched=rate_watched,
            cpu_alone=self.cpu_alone,
            cpu_watched=cpu_watched,
            client_cpu=client_cpu,
            cpu_lone=self.cpu_lone_window,
            cpu_watched_window=self.cpu,
            rss=rss,
            peak=peak,
            rss_series=rss_series,
            frame_kib=float(np.median(sizes[:, 0])) / 1024,
            steps_per_frame=float(np.median(sizes[:, 1])),
        )
        if stalled:
            out["stalled_evicted_s"] = evicted_at[0] if evicted_at else None
        return out

    def sample_rss(self, until: float, out: list[float]) -> None:
        """The server's RSS (MiB) every RSS_EVERY seconds until `until` (monotonic)."""
        while time.monotonic() < until and self.server.poll() is None:
            out.append(rss_mib(self.server.pid)[0])
            time.sleep(RSS_EVERY)

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
            "pinned": ",".join(f"{k}={v}" for k, v in self.cpus.items()),
            "nagle": a.nagle,
            "batch_clients": a.batch_clients,
            "clients_nice": a.clients_nice,
            "swarm": a.swarm,
            "audience_share": a.audience_share or None,
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
            # RSS while watched: at the resume, its highest, at the window's end
            "rss_watched_mib": [
                round(m["rss_series"][0], 1),
                round(max(m["rss_series"]), 1),
                round(m["rss_series"][-1], 1),
            ],
            "server_cpu_cores": {"alone": m["cpu_alone"], "watched": m["cpu_watched"]},
            "client_cpu_cores": m["client_cpu"],
            "reads_per_viewer_s": sum(r["reads"] for r in results) / a.viewers / a.seconds,
            "training_cpu_cores": {
                "alone": m["cpu_lone"]["training"],
                "watched": m["cpu_watched_window"]["training"],
            },
            "cpu_busy": {
                "alone": m["cpu_lone"]["busy"],
                "watched": m["cpu_watched_window"]["busy"],
            },
            "server_us_per_viewer_frame": (m["cpu_watched"] - m["cpu_alone"])
            * 1e6
            / max(a.viewers * float(np.median(frames)) / a.seconds, 1),
            "server_us_per_viewer_read": (m["cpu_watched"] - m["cpu_alone"])
            * 1e6
            / max(sum(r["reads"] for r in results) / a.seconds, 1),
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


def rss_growth(series: list[float]) -> float:
    """How far RSS rose while a run was watched: its highest less its value at the resume."""
    return series[1] - series[0]


def print_report(r: dict) -> None:
    f, le, ln = r["frames_per_viewer"], r["latency_ms_every_step"], r["latency_ms_newest_step"]
    print(f"viewers            {r['viewers']} in {r['client_procs']} {r['swarm']}"
          " client process(es), "
          f"{r['window_s']:g} s window, pinned: {r['pinned'] or 'no'}"
          f"{', Nagle on' if r['nagle'] else ''}"
          f"{', clients SCHED_BATCH' if r['batch_clients'] else ''}"
          f"{', clients nice ' + str(r['clients_nice']) if r['clients_nice'] else ''}")  # fmt: skip
    print(f"frames per viewer  min {f['min']}  median {f['median']:g}  max {f['max']}"
          f"  ({f['per_s']:.1f}/s, in {r['reads_per_viewer_s']:.1f} reads/s)")  # fmt: skip
    print(f"latency, every step   p50 {le['p50']:.1f} ms  p99 {le['p99']:.1f} ms")
    if ln["p50"] is not None:
        print(f"latency, newest step  p50 {ln['p50']:.1f} ms  p99 {ln['p99']:.1f} ms")
    print(f"evicted viewers    {r['evicted']}  (other closes: {r['other_closes']})")
    print(f"server RSS         {r['server_rss_mib']} MiB (peak {r['server_peak_rss_mib']} MiB);"
          " while watched: at resume {} -> highest {} -> at the end {}".format(
              *r["rss_watched_mib"]))  # fmt: skip
    c = r["server_cpu_cores"]
    print(f"server CPU         {c['alone']:.2f} cores alone, {c['watched']:.2f} watched;"
          f" clients {r['client_cpu_cores']:.2f} cores")  # fmt: skip
    t, b = r["training_cpu_cores"], r["cpu_busy"]
    print(f"training CPU       {t['alone']:.2f} cores alone, {t['watched']:.2f} watched;"
          f" server (watched - alone) {r['server_us_per_viewer_frame']:.1f} us"
          f" per viewer-frame, {r['server_us_per_viewer_read']:.1f} per viewer-read")  # fmt: skip
    print("CPUs busy (all)    alone " + " ".join(f"{x:.0%}" for x in b["alone"])
          + ", watched " + " ".join(f"{x:.0%}" for x in b["watched"])
          + "  (anything above server+training+clients is other sessions' work)")  # fmt: skip
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
              f" growth while watched {rss_growth(st['rss_watched_mib'][0]):+.1f} MiB without,"
              f" {rss_growth(st['rss_watched_mib'][1]):+.1f} MiB with them,"
              f" viewers evicted {st['evicted_viewers']},"
              f" training {st['rate_watched']:.0f} steps/s")  # fmt: skip
    print("targets            " + ", ".join(f"{k}: {'ok' if v else 'MISSED'}"
                                            for k, v in r["verdict"].items()))  # fmt: skip


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        port, data, viewers, interval, share, trace, nagle = sys.argv[2:9]
        nagle_on = nagle == "1"
        serve(int(port), Path(data), int(viewers), float(interval), float(share), trace, nagle_on)
        return
    if sys.argv[1:2] == ["--viewers-of"]:
        viewer_process(sys.argv[2], int(sys.argv[3]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--viewers", type=int, default=200)
    p.add_argument("--seconds", type=float, default=30.0, help="length of each window")
    p.add_argument("--client-procs", type=int, default=1, help="viewer processes (1 or 2)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    p.add_argument(
        "--pin",
        action="store_true",
        help="pin the server (and its training children) to CPU 0 and the clients to CPU 1",
    )
    p.add_argument(
        "--cpus",
        default="",
        help="where to pin whom, e.g. training=0,server=1,clients=1 (--pin: server=0,"
        "training=0,clients=1; a training CPU is set once each run's child exists)",
    )
    p.add_argument(
        "--audience-share",
        type=float,
        default=0.0,
        help="the server's AUDIENCE_SHARE (default: app/live/channel.py's; 1000: every tick)",
    )
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
    p.add_argument(
        "--trace",
        action="store_true",
        help="time each step block's stages in the server (bench/fanout_trace.py)",
    )
    p.add_argument(
        "--swarm",
        choices=("python", "c"),
        default="python",
        help="the viewers: Python (default) or bench/swarm.c, built with cc, at a fraction"
        " of the CPU",
    )
    p.add_argument(
        "--batch-clients",
        action="store_true",
        help="run the viewer processes as SCHED_BATCH: a waking viewer does not preempt the"
        " server it shares a core with (on a network, viewers are other machines)",
    )
    p.add_argument(
        "--clients-nice",
        type=int,
        default=0,
        help="the viewer processes' nice value (root: -10 puts them before a training child"
        " they share a CPU with, so they read as soon as a frame comes: --cpus"
        " training=0,server=1,clients=0 then measures the server on a CPU of its own)",
    )
    p.add_argument(
        "--nagle",
        action="store_true",
        help="leave Nagle's algorithm on for the viewers' sockets (the server before session 6)",
    )
    args = p.parse_args()
    result = Bench(args).run()
    print_report(result)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
