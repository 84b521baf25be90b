"""Where a page's bytes go: an audience stream of an unpaced run, taken apart by message and field.

    .venv/bin/python bench/audience_bytes.py                      # 10 s window, after 20,000 steps
    .venv/bin/python bench/audience_bytes.py --save /tmp/aud.jsonl   # keep the messages to study

It starts the real server (`backbeat --no-browser`, free port, temporary data folder),
trains the run bench/browser.py uses (spiral, 2 → [8, 8] → 1, unpaced), and connects two
websocket readers to it for the same window: the page's stream (`?detail=audience`, what
the page asks for) and a `?detail=full` script. For the audience stream it prints, per
message type, messages and bytes a second; per top-level field of frames and evals, the
bytes its `"key": value` takes; and per column of a summary. A Python reader stands in for
the page: the bytes are the server's, whoever reads them (bench/browser.py measures the
page itself).
"""

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.web.devserver import ServerProcess, backbeat_command, wait_until  # noqa: E402

RUN = {  # as bench/browser.py: small, unpaced, plays on after its chime
    "dataset": "spiral",
    "hidden": [8, 8],
    "steps_per_second": None,
    "max_steps": 10_000_000,
    "seed": 1,
    "stop_at_convergence": False,
}


class Reader:
    """One websocket reader: every text message received while `on`, with its arrival time."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(url, max_size=None, compression=None)
        self.hello = self.ws.recv()
        self.texts: list[str] = []
        self.on = self.done = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):
            while not self.done:
                text = self.ws.recv()
                if self.on:
                    self.texts.append(text)

    def close(self) -> None:
        self.done = True
        self.ws.close()
        self.thread.join(5)


def field_bytes(message: dict) -> dict[str, int]:
    """Bytes each top-level `"key":value,` takes in the message as sent."""
    return {k: len(orjson.dumps({k: v})) - 1 for k, v in message.items()}


def summary_bytes(summary: dict) -> dict[str, int]:
    """Bytes per column of a summary, over its four statistics (keys included).

    Either layout: column first (`{column: [mean, min, max, last]}`, now) or statistic
    first (`{"mean": {column: ...}, ...}`, before), so old and new code compare."""
    out: Counter = Counter()
    if "mean" not in summary:
        return Counter({k: len(orjson.dumps({k: v})) - 1 for k, v in summary.items()})
    for stat in summary.values():
        for name, value in stat.items():
            out[name] += len(orjson.dumps({name: value})) - 1
    return out


def report(texts: list[str], seconds: float) -> None:
    by_type: dict[str, list[int]] = defaultdict(list)
    fields: dict[str, Counter] = defaultdict(Counter)
    columns: Counter = Counter()
    kinds: Counter = Counter()
    for text in texts:
        m = orjson.loads(text)
        kind = m["type"]
        if kind == "frame":
            kind = "frame (summary)" if "summary" in m else "frame (every step)"
            if "summary" in m:
                columns.update(summary_bytes(m["summary"]))
        elif kind == "eval":
            kind = "eval with grid" if m.get("grid") else "eval, no grid"
        by_type[kind].append(len(text))
        fields[kind].update(field_bytes(m))
        kinds[kind] += 1
    total = sum(len(t) for t in texts)
    print(f"\naudience stream: {len(texts) / seconds:.1f} messages/s, "
          f"{total / 1024 / seconds:.1f} KiB/s")  # fmt: skip
    print(f"  {'message':<20} {'per s':>7} {'mean B':>8} {'KiB/s':>7} {'share':>6}")
    for kind, sizes in sorted(by_type.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {kind:<20} {len(sizes) / seconds:7.1f} {sum(sizes) / len(sizes):8.0f} "
              f"{sum(sizes) / 1024 / seconds:7.1f} {sum(sizes) / total:6.1%}")  # fmt: skip
    for kind in ("frame (summary)", "eval with grid", "eval, no grid"):
        if kind not in fields:
            continue
        n = kinds[kind]
        parts = ", ".join(f"{k} {v / n:.0f}" for k, v in fields[kind].most_common())
        print(f"  {kind}, mean bytes per field: {parts}")
    if columns:
        n = kinds["frame (summary)"]
        parts = ", ".join(f"{k} {v / n:.0f}" for k, v in columns.most_common())
        print(f"  summary, mean bytes per column (4 statistics, keys included): {parts}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="measured window (default 10 s)")
    p.add_argument("--history", type=int, default=20_000, help="steps trained before the window")
    p.add_argument("--save", metavar="FILE", help="write the audience messages as JSON lines")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="backbeat-bytes-") as tmp:
        data = Path(tmp) / "data"
        argv = [*backbeat_command(), "--no-browser", "--port", "{port}", "--data", str(data)]
        server = ServerProcess(argv, Path(tmp), env={"BACKBEAT_DATA": str(data)}, cwd=REPO)
        server.start().wait_healthy()
        try:
            http = httpx.Client(base_url=server.url, timeout=30)
            run_id = http.post("/api/runs", json=RUN).raise_for_status().json()["id"]
            step = lambda: http.get(f"/api/runs/{run_id}").json()["step"]  # noqa: E731
            wait_until(lambda: step() >= args.history, timeout=600, what="the history")
            path = f"{server.ws_url}/ws/runs/{run_id}"
            page, full = Reader(f"{path}?detail=audience"), Reader(f"{path}?detail=full")
            s0, t0 = step(), time.monotonic()
            page.on = full.on = True
            time.sleep(args.seconds)
            page.on = full.on = False
            seconds, s1 = time.monotonic() - t0, step()
            page.close()
            full.close()
            http.post(f"/api/runs/{run_id}/control", json={"action": "stop"})
            http.close()
        finally:
            server.close()
    print(f"run trained {(s1 - s0) / seconds:,.0f} steps/s over the {seconds:.1f} s window")
    report(page.texts, seconds)
    page_b, full_b = sum(map(len, page.texts)), sum(map(len, full.texts))
    print(f"\n?detail=full beside it: {full_b / 1024 / seconds:.1f} KiB/s; "
          f"ratio {full_b / page_b:.1f}x")  # fmt: skip
    if args.save:
        Path(args.save).write_text("".join(t + "\n" for t in page.texts))
        print(f"saved {len(page.texts)} audience messages to {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
