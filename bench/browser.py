"""Browser benchmark: the page joins a run streaming at full speed with a 1,000,000-step history.

    .venv/bin/python bench/browser.py                   # 1M-step history, 20 s window, 3 rounds
    .venv/bin/python bench/browser.py --seconds 5 --repeats 1 --history 200000   # a quick look
    .venv/bin/python bench/browser.py --profile /tmp/page.cpuprofile           # where the time goes
    .venv/bin/python bench/browser.py --stress 2      # two CPU-bound neighbours: a busy laptop

It starts the real server (`backbeat --no-browser` in a subprocess, free port, temporary data
folder), trains one unpaced run until its step counter passes --history, then, while the run
keeps training at full speed, opens the page in headless system Chromium (never a download),
which joins the newest live run on load; it clicks "enable sound" so the audio clock runs.
Over the measured window it records, from an init script in the page:
- frame times: deltas between requestAnimationFrame callbacks (p50, p95, max, frames > 50 ms);
- late notes: every AudioScheduledSourceNode.start(when) with `when` < context.currentTime at
  that call (a source scheduled behind the audio clock), and every `backbeat:note` event whose
  `time` is already behind currentTime when it is announced;
- websocket frames received per second, steps the page took in, and long tasks (> 50 ms);
and, from the server, the run's steps per second. Main-thread busy time comes from the Chrome
DevTools protocol (Performance.getMetrics). Targets: p95 frame time <= 20 ms, zero late notes.
"""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.web.devserver import ServerProcess, backbeat_command  # noqa: E402

RUN = {  # the Playground net: small, so training streams ~30,000 steps/s
    "dataset": "spiral",
    "hidden": [8, 8],
    "steps_per_second": None,
    "max_steps": 10_000_000,
    "seed": 1,
    "stop_at_convergence": False,  # plays on after its chime: it must outlast --history
}
VIEWPORT = {"width": 1600, "height": 900}  # as the browser tests use
WARMUP = 3.0  # s after sound is enabled before the window opens
LONG_FRAME = 50.0  # ms
TARGET_P95 = 20.0  # ms
CHROMIUM_ARGS = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]

# Installed before any page script runs. Nothing is measured until __bench.begin().
PROBE = """
(() => {
  const b = (window.__bench = {
    on: false, frames: [], joinFrames: [], lateStarts: [], starts: 0, notes: Counter(),
    lateNotes: [], ws: 0, wsFrames: 0, wsBytes: 0, longTasks: [],
    begin() {
      Object.assign(b, { on: true, frames: [], lateStarts: [], starts: 0, notes: Counter(),
        lateNotes: [], ws: 0, wsFrames: 0, wsBytes: 0, longTasks: [] });
      b.joined = b.joinFrames;
      b.step0 = window.backbeat.state.step;
      b.t0 = performance.now();
    },
    end() {
      b.on = false;
      return { frames: b.frames, lateStarts: b.lateStarts, starts: b.starts, notes: b.notes,
        lateNotes: b.lateNotes, ws: b.ws, wsFrames: b.wsFrames, wsBytes: b.wsBytes,
        longTasks: b.longTasks, joinFrames: b.joined, steps: window.backbeat.state.step - b.step0,
        seconds: (performance.now() - b.t0) / 1000 };
    },
  });
  function Counter() { return Object.create(null); }
  let last = null;
  const tick = (t) => {
    if (last !== null) (b.on ? b.frames : b.joinFrames).push(t - last);
    last = t;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  const start = AudioScheduledSourceNode.prototype.start;
  AudioScheduledSourceNode.prototype.start = function (when = 0, ...rest) {
    if (b.on) {
      const now = this.context.currentTime;
      b.starts += 1;
      if (when !== 0 && when < now) b.lateStarts.push((now - when) * 1000);
    }
    return start.call(this, when, ...rest);
  };
  addEventListener('backbeat:note', (e) => {
    if (!b.on) return;
    const ctx = window.backbeat.audio.ctx;
    b.notes[e.detail.kind] = (b.notes[e.detail.kind] || 0) + 1;
    const behind = ctx ? ctx.currentTime - e.detail.time : 0;
    if (behind > 0) b.lateNotes.push(behind * 1000);
  });
  const Socket = window.WebSocket;
  window.WebSocket = class extends Socket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        if (!b.on) return;
        b.ws += 1;
        b.wsBytes += e.data.length;
        if (e.data.slice(0, 24).includes('frame')) b.wsFrames += 1;
      });
    }
  };
  new PerformanceObserver((list) => {
    if (b.on) for (const e of list.getEntries()) b.longTasks.push(e.duration);
  }).observe({ type: 'longtask' });
})();
"""


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live descendants (the server trains runs in children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += cpu_seconds(int(child))
    return total


def chromium_path() -> str:
    path = os.environ.get("BACKBEAT_CHROMIUM") or shutil.which("chromium")
    if not path:
        sys.exit("no system Chromium: apt-get install -y chromium (or set BACKBEAT_CHROMIUM)")
    return path


class Server(ServerProcess):
    """`backbeat --no-browser` on a free port and a temporary data folder, as a user starts it."""

    def __init__(self, data: Path, log_dir: Path) -> None:
        argv = [*backbeat_command(), "--no-browser", "--port", "{port}", "--data", str(data)]
        super().__init__(argv, log_dir, env={"BACKBEAT_DATA": str(data)}, cwd=REPO)
        self.start().wait_healthy()
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def step(self, run_id: str) -> tuple[float, int]:
        t0 = time.time()
        step = self.http.get(f"/api/runs/{run_id}").json()["step"]
        return (t0 + time.time()) / 2, step

    def close(self) -> None:
        self.http.close()
        super().close()


def grow_history(server: Server, steps: int) -> tuple[str, float]:
    """Create the unpaced run and wait until it has trained `steps` steps; its id and rate."""
    r = server.http.post("/api/runs", json=RUN)
    r.raise_for_status()
    run_id = r.json()["id"]
    t0, _ = server.step(run_id)
    while True:
        t, step = server.step(run_id)
        print(f"\r  history: {step:>9,} / {steps:,} steps", end="", flush=True)
        if step >= steps:
            print()
            return run_id, step / (t - t0)
        state = server.http.get(f"/api/runs/{run_id}").json()["state"]
        if state not in ("running", "paused"):
            raise SystemExit(f"\nthe run ended ({state}) at step {step:,}, short of {steps:,}")
        time.sleep(1.0)


def cpu_profile_summary(profile: dict, top: int = 20) -> list[tuple[float, str]]:
    """Self time per function (ms) from a DevTools .cpuprofile."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    deltas = profile["timeDeltas"]
    self_us: Counter = Counter()
    for sample, dt in zip(profile["samples"], deltas, strict=True):
        f = nodes[sample]["callFrame"]
        where = f"{f['functionName'] or '(anonymous)'} {Path(f['url']).name}:{f['lineNumber'] + 1}"
        self_us[where if f["url"] else f["functionName"] or "(program)"] += dt
    return [(us / 1000, name) for name, us in self_us.most_common(top)]


def process_cpu(cdp) -> dict[str, float]:
    """CPU seconds of each Chromium process, by type (the busiest renderer is the page's)."""
    out: dict[str, float] = {}
    for p in cdp.send("SystemInfo.getProcessInfo")["processInfo"]:
        kind = p["type"] if p["type"] in ("browser", "renderer", "GPU") else "other"
        out[f"{kind} {p['id']}"] = p["cpuTime"]
    return out


def chromium_cores(p0: dict, p1: dict, seconds: float) -> dict[str, float]:
    """Cores used in the window: the page's renderer, the GPU (compositing) process, the rest."""
    used = {k: (v - p0.get(k, 0.0)) / seconds for k, v in p1.items()}
    renderers = [v for k, v in used.items() if k.startswith("renderer")]
    gpu = sum(v for k, v in used.items() if k.startswith("GPU"))
    page = max(renderers, default=0.0)
    return {"renderer": page, "gpu": gpu, "other": sum(used.values()) - page - gpu}


class FullStream:
    """A script beside the page on `?detail=full` (every step): its bytes/s, the same window."""

    def __init__(self, server: Server, run_id: str) -> None:
        from websockets.sync.client import connect

        url = f"ws://127.0.0.1:{server.port}/ws/runs/{run_id}?detail=full"
        self.ws = connect(url, max_size=None)
        self.ws.recv()  # hello
        self.bytes, self.on, self.done = 0, False, False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):  # `close` ends it
            while not self.done:
                text = self.ws.recv()
                if self.on:
                    self.bytes += len(text)

    def close(self) -> None:
        self.done = True
        self.ws.close()
        self.thread.join(5)


def measure_once(browser, server: Server, run_id: str, args: argparse.Namespace) -> dict:
    browser_cdp = browser.new_browser_cdp_session()
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(PROBE)
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        t_open = time.monotonic()
        page.goto(server.url)
        page.wait_for_function(
            "id => window.backbeat && backbeat.state.runId === id && backbeat.state.step > 0",
            arg=run_id,
        )
        joined = time.monotonic() - t_open
        page.get_by_test_id("enable-sound").click()
        page.wait_for_function("window.backbeat.audio.live")
        time.sleep(WARMUP)
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        if args.profile:
            cdp.send("Profiler.enable")
            cdp.send("Profiler.setSamplingInterval", {"interval": 250})
            cdp.send("Profiler.start")
        m0 = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        p0 = process_cpu(browser_cdp)
        full = FullStream(server, run_id)
        (t0, s0), c0 = server.step(run_id), cpu_seconds(server.proc.pid)
        page.evaluate("window.__bench.begin()")
        full.on = True
        time.sleep(args.seconds)
        got = page.evaluate("window.__bench.end()")
        full.on = False
        full.close()
        (t1, s1), c1 = server.step(run_id), cpu_seconds(server.proc.pid)
        m1 = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        p1 = process_cpu(browser_cdp)
        if args.profile:
            profile = cdp.send("Profiler.stop")["profile"]
            Path(args.profile).write_text(json.dumps(profile))
            got["profile_top"] = cpu_profile_summary(profile)
        state = page.evaluate("window.backbeat.state")
    finally:
        context.close()
        browser_cdp.detach()
    span = t1 - t0
    frames = np.array(got["frames"]) if got["frames"] else np.array([np.nan])
    join = np.array(got["joinFrames"]) if got["joinFrames"] else np.array([np.nan])
    kinds = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")
    busy = {k: (m1[k] - m0[k]) / got["seconds"] for k in kinds}
    return {
        "join_s": joined,
        "history_steps": s0,
        "frame_ms": {
            "n": len(got["frames"]),
            "p50": float(np.percentile(frames, 50)),
            "p95": float(np.percentile(frames, 95)),
            "max": float(frames.max()),
            "long": int((frames > LONG_FRAME).sum()),
            "fps": len(got["frames"]) / got["seconds"],
        },
        "join_frame_ms": {"max": float(join.max()), "long": int((join > LONG_FRAME).sum())},
        "late_starts": len(got["lateStarts"]),
        "late_start_ms_max": max(got["lateStarts"], default=0.0),
        "source_starts": got["starts"],
        "late_notes": len(got["lateNotes"]),
        "late_note_ms_max": max(got["lateNotes"], default=0.0),
        "notes": got["notes"],
        "ws_frames_per_s": got["wsFrames"] / got["seconds"],
        "ws_messages_per_s": got["ws"] / got["seconds"],
        "ws_kib_per_s": got["wsBytes"] / 1024 / got["seconds"],
        "full_kib_per_s": full.bytes / 1024 / got["seconds"],
        "page_steps_per_s": got["steps"] / got["seconds"],
        "run_steps_per_s": (s1 - s0) / span,
        "server_cpu_cores": (c1 - c0) / span,
        "main_thread_busy": busy,
        "chromium_cores": chromium_cores(p0, p1, got["seconds"]),
        "long_tasks": len(got["longTasks"]),
        "long_task_ms_max": max(got["longTasks"], default=0.0),
        "gaps": state["gaps"],
        "errors": errors,
        "load_avg_1min": os.getloadavg()[0],
        "profile_top": got.get("profile_top"),
    }


def print_round(i: int, r: dict) -> None:
    f, busy = r["frame_ms"], r["main_thread_busy"]
    notes = ", ".join(f"{k} {v}" for k, v in sorted(r["notes"].items()))
    print(f"round {i}: joined in {r['join_s']:.1f} s at step {r['history_steps']:,}; "
          f"load avg {r['load_avg_1min']:.2f}")  # fmt: skip
    print(f"  frame time   p50 {f['p50']:.1f} ms  p95 {f['p95']:.1f} ms  max {f['max']:.1f} ms  "
          f"long (>{LONG_FRAME:g} ms) {f['long']} of {f['n']}  ({f['fps']:.1f} rAF/s)")  # fmt: skip
    print(f"  late notes   {r['late_starts']} of {r['source_starts']} source starts "
          f"(worst {r['late_start_ms_max']:.1f} ms); {r['late_notes']} announced notes behind "
          f"the clock (worst {r['late_note_ms_max']:.1f} ms); notes: {notes}")  # fmt: skip
    print(
        f"  stream       {r['ws_frames_per_s']:.1f} frames/s ({r['ws_messages_per_s']:.1f} "
        f"messages/s, {r['ws_kib_per_s']:.0f} KiB/s; ?detail=full beside it "
        f"{r['full_kib_per_s']:.0f} KiB/s); page took {r['page_steps_per_s']:,.0f} "
        f"steps/s; run trained {r['run_steps_per_s']:,.0f} steps/s; gaps {r['gaps']}"
    )
    print(f"  main thread  busy {busy['TaskDuration']:.0%} (script {busy['ScriptDuration']:.0%}, "
          f"layout {busy['LayoutDuration']:.0%}, style {busy['RecalcStyleDuration']:.0%}); "
          f"long tasks {r['long_tasks']} (worst {r['long_task_ms_max']:.0f} ms); "
          f"server+trainer {r['server_cpu_cores']:.2f} cores")  # fmt: skip
    c = r["chromium_cores"]
    print(f"  chromium     renderer {c['renderer']:.2f} cores, GPU/compositor {c['gpu']:.2f}, "
          f"other {c['other']:.2f}")  # fmt: skip
    j = r["join_frame_ms"]
    print(f"  joining      from load to the window: worst frame {j['max']:.0f} ms, "
          f"{j['long']} long frames")  # fmt: skip
    if r["errors"]:
        print(f"  page errors  {r['errors'][:3]}")
    if r["profile_top"]:
        print("  profile, self time (ms) over the window:")
        for ms, name in r["profile_top"]:
            print(f"    {ms:8.1f}  {name}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="measured window (default 20 s)")
    p.add_argument("--repeats", type=int, default=3, help="rounds, a fresh page each (default 3)")
    p.add_argument("--history", type=int, default=1_000_000, help="steps trained before joining")
    p.add_argument("--profile", metavar="FILE", help="record a CPU profile of the last round")
    p.add_argument("--stress", type=int, default=0, metavar="N",
                   help="N busy-looping processes run during the rounds (default 0)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="also print every round as JSON")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    print(
        f"chromium {chromium_path()} (headless, software rendering), {VIEWPORT['width']}x"
        f"{VIEWPORT['height']}; {os.cpu_count()} CPUs; {args.stress} busy neighbours"
    )
    with tempfile.TemporaryDirectory(prefix="backbeat-bench-") as tmp:
        server = Server(Path(tmp) / "data", Path(tmp))
        try:
            run_id, rate = grow_history(server, args.history)
            print(f"  run {run_id}: {args.history:,} steps at {rate:,.0f} steps/s")
            rounds = []
            hogs = [
                subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(args.stress)
            ]
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
                try:
                    for i in range(args.repeats):
                        last = i == args.repeats - 1
                        opts = argparse.Namespace(
                            **{**vars(args), "profile": last and args.profile}
                        )
                        rounds.append(measure_once(browser, server, run_id, opts))
                        print_round(i + 1, rounds[-1])
                finally:
                    browser.close()
                    for hog in hogs:
                        hog.kill()
                        hog.wait()
            server.http.post(f"/api/runs/{run_id}/control", json={"action": "stop"})
        finally:
            server.close()
    med = lambda f: float(np.median([f(r) for r in rounds]))  # noqa: E731
    p95 = med(lambda r: r["frame_ms"]["p95"])
    late = sum(r["late_starts"] + r["late_notes"] for r in rounds)  # any late note, in any round
    print(f"\nmedian of {len(rounds)} round(s), {args.seconds:g} s windows:")
    print(f"  frame time p50 {med(lambda r: r['frame_ms']['p50']):.1f} ms, "
          f"p95 {p95:.1f} ms, max {med(lambda r: r['frame_ms']['max']):.1f} ms, "
          f"long frames {med(lambda r: r['frame_ms']['long']):g}")  # fmt: skip
    print(f"  late notes {med(lambda r: r['late_starts']):g} source starts, "
          f"{med(lambda r: r['late_notes']):g} announced notes "
          f"(all rounds: {sum(r['late_starts'] for r in rounds)} and "
          f"{sum(r['late_notes'] for r in rounds)})")  # fmt: skip
    page_kib, full_kib = med(lambda r: r["ws_kib_per_s"]), med(lambda r: r["full_kib_per_s"])
    print(f"  page received {page_kib:.0f} KiB/s; a ?detail=full script beside it "
          f"{full_kib:.0f} KiB/s: {full_kib / page_kib:.0f}x less for the page")  # fmt: skip
    print(f"  {med(lambda r: r['ws_frames_per_s']):.1f} frames/s received, run at "
          f"{med(lambda r: r['run_steps_per_s']):,.0f} steps/s")  # fmt: skip
    print(f"  page main thread busy {med(lambda r: r['main_thread_busy']['TaskDuration']):.0%}, "
          f"renderer {med(lambda r: r['chromium_cores']['renderer']):.2f} cores")  # fmt: skip
    ok_frames, ok_late = p95 <= TARGET_P95, late == 0
    print(f"  p95 frame time <= {TARGET_P95:g} ms: {'met' if ok_frames else 'MISSED'}; "
          f"zero late notes (every round): {'met' if ok_late else 'MISSED'}")  # fmt: skip
    if args.json:
        print(json.dumps(rounds, indent=1))
    return 0 if ok_frames and ok_late else 1


if __name__ == "__main__":
    sys.exit(main())
