"""The page on audience frames: summaries sound and draw as the steps they stand for, and a
compressed decision grid paints the very cells the server quantised."""

import base64
import concurrent.futures
import json
import zlib

import numpy as np
from websockets.sync.client import connect

from app.web.devserver import wait_until

LAYERS = 3  # weight layers of the default network [2, 8, 8, 1]
SUMMARY_ABOVE = 16  # app.live.audience.SUMMARY_ABOVE: frames with more steps are summarised

# Feed the page's own consumers (socket.js → sonify.js, series.js) every step of some frames,
# and the same frames as the audience got them; report what each side ends up with.
CONSUME = """async ({full, audience}) => {
  const { frameSteps } = await import('/static/js/socket.js');
  const { StepGroup } = await import('/static/js/sonify.js');
  const { Series } = await import('/static/js/series.js');
  const take = (frames) => {
    const group = new StepGroup();
    const loss = new Series('loss', '#000');
    const grad = new Series('grad', '#000');
    for (const f of frames) {
      for (const s of frameSteps(f)) {
        group.add(s);
        const n = s.count || 1;
        loss.add(s.step, s.loss, n, (s.lo || s).loss, (s.hi || s).loss);
        grad.add(s.step, s.grads[0], n, (s.lo || s).grads[0], (s.hi || s).grads[0]);
      }
    }
    const whole = (series) => ({
      mean: series.sum.reduce((a, b) => a + b, 0) / series.w.reduce((a, b) => a + b, 0),
      lo: Math.min(...series.lo), hi: Math.max(...series.hi), last: series.x[series.x.length - 1],
    });
    const beat = group.mean();
    return { beat, loss: whole(loss), grad: whole(grad) };
  };
  return { full: take(full), audience: take(audience) };
}"""

# Count what the page's websocket receives: summarised frames and bytes.
COUNT_FRAMES = """(() => {
  window.__received = { summaries: 0, frames: 0, bytes: 0 };
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        window.__received.bytes += e.data.length;
        if (e.data.startsWith('{"type":"frame"')) window.__received.frames += 1;
        if (e.data.includes('"summary":')) window.__received.summaries += 1;
      });
    }
  };
})();"""


# The page's own heatmap paints a grid as it arrives on the wire; report its cells and every
# field pixel that is not the colour map's colour for its cell.
PAINT = """async (grid) => {
  const { DecisionHeatmap } = await import('/static/js/heatmap.js');
  const canvas = document.createElement('canvas');
  document.body.append(canvas);
  const map = new DecisionHeatmap(canvas);
  map.setGrid(grid);
  const deadline = performance.now() + 10000;
  while (!map.painted) {
    if (performance.now() > deadline) throw new Error('the grid was never painted');
    await new Promise((r) => setTimeout(r, 10));
  }
  const px = map.field.getContext('2d').getImageData(0, 0, grid.size, grid.size).data;
  const cells = Array.from(map.bytes.bytes);
  let wrong = 0;
  cells.forEach((v, i) => {
    for (let k = 0; k < 3; k++) wrong += px[i * 4 + k] !== map.colors[v * 3 + k];
    wrong += px[i * 4 + 3] !== 255;
  });
  canvas.remove();
  return { cells, wrong, extent: map.extent };
}"""


def _messages(url: str, until_frames: int) -> dict[int, dict]:
    """A live stream's messages by seq, up to a number of frames."""
    got, frames = {}, 0
    with connect(url, max_size=None) as ws:
        json.loads(ws.recv())  # hello
        while frames < until_frames:
            m = json.loads(ws.recv())
            if m["type"] == "ping":
                continue
            got[m["seq"]] = m
            frames += m["type"] == "frame"
    return got


def _close(a: float, b: float, rel: float = 1e-5) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def test_summaries_reach_the_same_beat_range_and_charts_as_every_step(probe, server):
    probe.open()
    r = server.http.post(
        "/api/runs",
        json={"steps_per_second": None, "max_steps": 10_000_000, "stop_at_convergence": False},
    )
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    wait_until(lambda: server.http.get(f"/api/runs/{run_id}").json()["step"] > 2000, what="steps")
    ws = f"ws://127.0.0.1:{server.port}/ws/runs/{run_id}"
    # both sockets at once, so they share their sequence numbers from the later hello on
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a = pool.submit(_messages, ws, 40)
        f = pool.submit(_messages, f"{ws}?detail=full", 60)
        audience, full = a.result(), f.result()
    server.http.post(f"/api/runs/{run_id}/control", json={"action": "stop"})
    common = sorted(s for s in set(audience) & set(full) if audience[s]["type"] == "frame")
    assert len(common) >= 20
    summarised = [s for s in common if "summary" in audience[s]]
    assert len(summarised) >= 3  # an unpaced run outruns the ear (a loaded machine less so)
    got = probe.page.evaluate(
        CONSUME, {"full": [full[s] for s in common], "audience": [audience[s] for s in common]}
    )
    want, have = got["full"], got["audience"]
    assert have["beat"]["count"] == want["beat"]["count"] > SUMMARY_ABOVE * len(summarised)
    for key in ("step", "t", "epoch", "crescendo"):  # the last step's, exactly
        assert have["beat"][key] == want["beat"][key], key
    for key in ("loss", "entropy"):  # the mean over every step
        assert _close(have["beat"][key], want["beat"][key]), key
    for g, h in zip(want["beat"]["grads"], have["beat"]["grads"], strict=True):
        assert _close(g, h)
    for chart in ("loss", "grad"):  # the same band (lowest, highest) and mean line
        assert have[chart]["lo"] == want[chart]["lo"] and have[chart]["hi"] == want[chart]["hi"]
        assert have[chart]["last"] == want[chart]["last"]
        assert _close(have[chart]["mean"], want[chart]["mean"])


def test_an_unpaced_run_on_summaries_beats_echoes_and_draws(probe):
    probe.page.add_init_script(COUNT_FRAMES)
    probe.open("#stop_at_convergence=false&max_steps=1000000")  # still training while it is heard
    canvases = ("network", "chart-loss", "chart-grad", "chart-entropy")
    before = {c: probe.canvas_pixels(c) for c in canvases}
    probe.page.get_by_test_id("tempo-max").click()
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.value("step-count") > 5_000, timeout=40, what="5,000 steps")
    probe.wait(lambda: len(probe.notes("beat")) >= 20, timeout=40, what="twenty beats")
    received = probe.page.evaluate("window.__received")
    assert received["summaries"] >= 10  # the page heard the run through summaries
    notes = probe.notes()
    beats = [n for n in notes if n["kind"] == "beat"]
    steps = [b["step"] for b in beats]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    gaps = [b["time"] - a["time"] for a, b in zip(beats[5:], beats[6:], strict=False)]
    assert min(gaps) >= 1 / 16 - 1e-3  # beats fuse as before: never more than 16 a second
    for beat in beats[:-1]:
        echoes = [n for n in notes if n["kind"] == "echo" and n["step"] == beat["step"]]
        assert [e["layer"] for e in echoes] == list(range(LAYERS - 1, -1, -1))
        assert all(e["gain"] > 0 for e in echoes)
    probe.wait(
        lambda: all(probe.canvas_pixels(c) != before[c] for c in canvases),
        what="every canvas to change",
    )
    assert probe.errors == []


def test_the_page_paints_a_live_runs_compressed_grid_cell_for_cell(probe, server):
    probe.open()
    r = server.http.post("/api/runs", json={"steps_per_second": None, "max_steps": 3000})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    wait_until(lambda: server.http.get(f"/api/runs/{run_id}").json()["step"] > 500, what="steps")
    with connect(f"ws://127.0.0.1:{server.port}/ws/runs/{run_id}", max_size=None) as ws:
        grid = json.loads(ws.recv())["last_eval"]["grid"]
    server.http.post(f"/api/runs/{run_id}/control", json={"action": "stop"})
    assert "data" not in grid and len(grid["zlib"]) < 4096  # 5,464 characters uncompressed
    cells = np.frombuffer(zlib.decompress(base64.b64decode(grid["zlib"])), np.uint8)
    assert len(np.unique(cells)) > 2  # a real field: saturated regions and a band between
    got = probe.page.evaluate(PAINT, grid)
    assert got["cells"] == cells.tolist()  # what the hover readout reads
    assert got["wrong"] == 0  # every field pixel is its cell's colour, as before compression
    assert got["extent"] == {"x": grid["x"], "y": grid["y"]}
    assert probe.errors == []
