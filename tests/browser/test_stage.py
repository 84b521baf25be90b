"""On stage: presenter mode, shortcuts, late joiners, replay, bookmarks, restarts and exports."""

import contextlib
import csv
import json
import re
import sqlite3
from pathlib import Path

from app.store import DB_NAME
from app.web.devserver import wait_until
from browser.conftest import PRESENTER_TOKEN, PageProbe

LAYERS = 3  # weight layers of the network the tests run: [2 or 4, 8, 8, 1]
SCRUB = """(el, v) => {
  el.value = String(v);
  el.dispatchEvent(new Event('input', {bubbles: true}));
  el.dispatchEvent(new Event('change', {bubbles: true}));
}"""
# A bookmark with every setting away from its default.
BOOKMARK = (
    "#dataset=moons&n_samples=300&noise=0.15&train_ratio=0.7&features=x1,x2,x1*x2,sin(x2)"
    "&hidden=6,4,3&activation=relu&optimizer=adam&learning_rate=0.003&batch_size=25"
    "&regularization=l2&regularization_rate=0.01&seed=42&max_steps=1234&tempo=13&test=1&log=0"
)
BOOKMARKED_CONFIG = {
    "dataset": "moons",
    "n_samples": 300,
    "noise": 0.15,
    "train_ratio": 0.7,
    "features": ["x1", "x2", "x1*x2", "sin(x2)"],
    "hidden": [6, 4, 3],
    "activation": "relu",
    "optimizer": "adam",
    "learning_rate": 0.003,
    "batch_size": 25,
    "regularization": "l2",
    "regularization_rate": 0.01,
    "seed": 42,
    "max_steps": 1234,
    "steps_per_second": 13,
}


# Interactive elements without an accessible name (aria-label, labelledby, <label>, text, title).
UNNAMED_CONTROLS = """() => [
  ...document.querySelectorAll('button, input, select, a[href], [role="radio"]'),
].filter((el) => {
    const by = el.getAttribute('aria-labelledby');
    const name = el.getAttribute('aria-label')
      || (by && document.getElementById(by)?.textContent)
      || [...(el.labels || [])].map((l) => l.textContent).join('')
      || el.textContent || el.title;
    return !name || !name.trim();
  })
  .map((el) => el.outerHTML.slice(0, 80))"""


def frame_steps(payload) -> list[int]:
    """The step numbers a websocket frame carried (none for other messages)."""
    msg = json.loads(payload) if isinstance(payload, str) else {}
    return msg.get("beats", {}).get("step", []) if msg.get("type") == "frame" else []


def status(probe) -> str:
    return probe.text("status").lower()


def presenting(probe) -> bool:
    return probe.page.evaluate("document.body.dataset.presenting") == "true"


def tempo(probe) -> float:
    return float(probe.text("tempo-value").split()[0])


def finished_run(server, **config) -> dict:
    """A run trained to its end on the server, as listed by GET /api/runs."""
    config = {"features": ["x1", "x2"], "stop_at_convergence": False, **config}
    r = server.http.post("/api/runs", json={"steps_per_second": None, **config})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    return wait_until(
        lambda: next(
            (
                x
                for x in server.http.get("/api/runs").json()
                if x["id"] == run_id and x["state"] == "finished"
            ),
            None,
        ),
        what="the stored run to finish",
    )


def test_presenter_mode_hides_controls_keeps_the_legend_and_leaves_on_esc_or_p(probe):
    probe.open()
    page = probe.page
    toggle = page.get_by_role("button", name="Presenter mode")
    assert toggle.get_attribute("aria-pressed") == "false"
    page.keyboard.press("p")
    probe.wait(lambda: presenting(probe), what="presenter mode")
    assert toggle.get_attribute("aria-pressed") == "true"
    for hidden in ("seed", "play", "lr", "volume", "open-history"):
        assert page.get_by_test_id(hidden).is_hidden(), hidden
    assert page.get_by_role("heading", name="What you hear").is_visible()
    assert page.get_by_text("Beat", exact=True).is_visible()
    assert page.get_by_test_id("network").is_visible()
    assert (
        page.get_by_test_id("step-count").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        >= 54
    )
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(0, 0, 0)"
    assert page.evaluate("getComputedStyle(document.body).color") == "rgb(255, 255, 255)"

    page.keyboard.press("Escape")
    probe.wait(lambda: not presenting(probe), what="Esc to leave presenter mode")
    assert page.get_by_test_id("seed").is_visible()
    toggle.click()
    probe.wait(lambda: presenting(probe), what="the button to enter presenter mode")
    page.keyboard.press("p")
    probe.wait(lambda: not presenting(probe), what="P to leave presenter mode")
    probe.wait(lambda: not page.evaluate("document.fullscreenElement"), what="full screen to end")

    # A browser that refuses full screen still gets presenter mode, filling the window.
    page.evaluate(
        "() => { Element.prototype.requestFullscreen = () => Promise.reject(new TypeError('no')); }"
    )
    page.keyboard.press("p")
    probe.wait(lambda: presenting(probe), what="presenter mode without full screen")
    page.keyboard.press("Escape")
    probe.wait(lambda: not presenting(probe), what="Esc to leave")
    assert probe.errors == []


def test_each_shortcut_and_none_while_typing(probe, server):
    probe.open()
    page = probe.page
    keys = page.keyboard
    keys.press("s")  # S from idle: a paused run, one step
    try:
        probe.wait(lambda: probe.value("step-count") == 1, what="S to step")
    except Exception:
        print(
            "DIAG", probe.state(), probe.text("error-run"), probe.errors, probe.value("step-count")
        )
        print(
            "RUNS",
            [(r["id"], r["state"], r["step"]) for r in server.http.get("/api/runs").json()[:5]],
        )
        raise
    assert status(probe) == "paused"
    run_id = probe.state()["runId"]
    keys.press("s")
    probe.wait(lambda: probe.value("step-count") == 2, what="a second step")
    keys.press("Space")
    probe.wait(lambda: status(probe) == "running", what="Space to play")
    keys.press("Space")
    probe.wait(lambda: status(probe) == "paused", what="Space to pause")
    paused_at = server.http.get(f"/api/runs/{run_id}").json()["step"]

    mute = page.get_by_role("button", name="Mute")
    keys.press("m")
    assert mute.get_attribute("aria-pressed") == "true"
    keys.press("m")
    assert mute.get_attribute("aria-pressed") == "false"

    before = tempo(probe)
    keys.press("ArrowUp")
    probe.wait(lambda: tempo(probe) > before, what="↑ to speed up")
    faster = tempo(probe)
    probe.wait(
        lambda: server.http.get(f"/api/runs/{run_id}").json()["steps_per_second"] == faster,
        what="the live run to take the new tempo",
    )
    assert f"tempo={faster:g}" in page.evaluate("location.hash")
    keys.press("ArrowDown")
    keys.press("ArrowDown")
    probe.wait(lambda: tempo(probe) < before, what="↓ to slow down")

    keys.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    probe.wait(help_dialog.is_visible, what="? to open the help")
    listed = set(help_dialog.get_by_role("row").locator("kbd").all_inner_texts())
    assert {"Space", "S", "R", "M", "↑", "↓", "P", "?", "Esc"} <= listed
    keys.press("Escape")
    probe.wait(help_dialog.is_hidden, what="Esc to close the help")

    # typing in a field: the letters are the field's
    page.get_by_test_id("seed").focus()
    for key in ("s", "r", "m", "p", "Space"):
        keys.press(key)
    page.get_by_test_id("lr").focus()
    keys.press("m")
    assert mute.get_attribute("aria-pressed") == "false"
    assert not presenting(probe)
    assert status(probe) == "paused" and probe.value("step-count") == paused_at

    page.get_by_test_id("network").click()  # focus back on the page
    keys.press("r")
    probe.wait(lambda: status(probe) == "ready", what="R to reset")
    probe.wait(lambda: probe.value("step-count") == 0, what="the counter back at 0")
    probe.wait(
        lambda: server.http.get(f"/api/runs/{run_id}").json()["state"] == "stopped",
        what="the reset run to stop on the server",
    )
    assert probe.errors == []


def test_a_late_joiner_sees_the_same_run_and_hears_it_in_step(probe, more_probes, server):
    probe.open("#max_steps=1000000&stop_at_convergence=false")
    probe.page.get_by_test_id("tempo-max").click()
    probe.page.get_by_test_id("play").click()  # the presenter's click enables their sound
    probe.wait(lambda: probe.value("step-count") >= 300, what="the run well underway")
    probe.page.get_by_test_id("tempo-max").click()
    probe.set_tempo(400)  # ~10 steps/s: a beat for every step
    run_id = probe.state()["runId"]

    late = more_probes()
    late.open()
    late.wait(lambda: late.state()["runId"] == run_id, what="the late joiner to join the live run")
    late.wait(lambda: status(late) == "running", what="the late joiner to see it running")
    assert late.value("step-count") >= 300  # the history arrived with the hello
    assert late.page.get_by_test_id("chart-loss").is_visible()
    gate = late.page.get_by_role("button", name="Click to enable sound")
    assert gate.is_visible()
    gate.click()
    late.wait(gate.is_hidden, what="the sound gate to go once sound is on")
    late.wait(lambda: len(late.notes("beat")) >= 6, what="the late joiner's beats")
    assert {e["layer"] for e in late.notes("echo")} == set(range(LAYERS))

    # in step: the same step sounds at the same moment on both pages
    def beat_times(p: PageProbe) -> dict[int, float]:
        return {n["step"]: n["wall"] for n in p.notes("beat")}

    def common() -> list[int]:
        return sorted(set(beat_times(probe)) & set(beat_times(late)))

    late.wait(lambda: len(common()) >= 5, timeout=40, what="five steps beaten on both pages")
    ours, theirs = beat_times(probe), beat_times(late)
    apart = sorted(abs(ours[s] - theirs[s]) for s in set(ours) & set(theirs))
    # the median: a loaded machine may stall one page for a beat (its late steps fuse into the next)
    assert apart[len(apart) // 2] < 120  # ms

    probe.page.keyboard.press("Space")
    probe.wait(lambda: status(probe) == "paused", what="the presenter to pause")
    late.wait(lambda: status(late) == "paused", what="the late joiner to see the pause")
    paused_at = server.http.get(f"/api/runs/{run_id}").json()["step"]
    probe.wait(lambda: probe.value("step-count") == paused_at, what="the presenter's counter")
    late.wait(
        lambda: late.value("step-count") == paused_at, what="the same step on the late joiner"
    )
    assert late.exceptions == [] and probe.exceptions == []


def test_a_viewer_follows_the_presenter_and_cannot_steer(more_probes, shared_server):
    presenter = more_probes(shared_server)
    presenter.open(f"?token={PRESENTER_TOKEN}#max_steps=100000")
    assert "token" not in presenter.page.url  # not shown on the projector
    presenter.page.get_by_test_id("play").click()
    presenter.wait(lambda: presenter.value("step-count") >= 3, what="the presenter's run")
    first = presenter.state()["runId"]

    viewer = more_probes(shared_server)
    viewer.open()
    page = viewer.page
    assert page.get_by_test_id("role").text_content() == "Watching"
    viewer.wait(lambda: viewer.state()["runId"] == first, what="the viewer to join at once")
    viewer.wait(lambda: status(viewer) == "running", what="the viewer to see it running")
    for control in ("play", "step", "reset", "seed", "lr"):
        assert page.get_by_test_id(control).is_disabled(), control
    page.get_by_role("button", name="Click to enable sound").click()
    viewer.wait(lambda: len(viewer.notes("beat")) >= 2, what="the viewer's beats after one click")
    page.keyboard.press("Space")
    page.keyboard.press("r")
    assert shared_server.http.get(f"/api/runs/{first}").json()["state"] == "running"

    presenter.page.keyboard.press("r")  # a new run: the room follows without a reload
    presenter.page.keyboard.press("Space")
    presenter.wait(lambda: presenter.state()["runId"] not in (None, first), what="the next run")
    second = presenter.state()["runId"]
    viewer.wait(lambda: viewer.state()["runId"] == second, what="the viewer to follow the next run")
    assert viewer.exceptions == []


def test_replay_of_a_finished_run_sounds_scrubs_and_stops(probe, server):
    run = finished_run(server, max_steps=400)
    probe.open("#tempo=40")
    page = probe.page
    page.keyboard.press("h")
    history = page.get_by_role("dialog", name="Run history")
    row = history.get_by_test_id(f"history-{run['id']}")
    row.wait_for()
    assert (
        "spiral" in row.inner_text()
        and "2–8–8–1" in row.inner_text()
        and "finished" in row.inner_text()
    )
    assert re.search(r"\d\.\d{3}", row.inner_text())  # its final loss
    streams: list[dict] = []  # each replay connection: its start= and the steps it sent

    def record(ws):
        stream = {"url": ws.url, "steps": []}
        streams.append(stream)
        ws.on("framereceived", lambda payload: stream["steps"].extend(frame_steps(payload)))

    page.on("websocket", record)
    row.get_by_role("button", name=re.compile("^Replay")).click()
    probe.wait(lambda: status(probe) == "replay", what="the replay to start")
    assert page.get_by_test_id("replay-bar").is_visible()
    probe.wait(lambda: len(probe.notes("beat")) >= 4, what="replayed beats")
    notes = probe.notes()
    for beat in [n for n in notes if n["kind"] == "beat"][:-1]:
        echoes = [n["layer"] for n in notes if n["kind"] == "echo" and n["step"] == beat["step"]]
        assert echoes == list(range(LAYERS - 1, -1, -1))
    first = [n["step"] for n in probe.notes("beat")][:4]
    # from the start, in order (above 16 steps/s one beat stands for a group of steps)
    assert first == sorted(set(first)) and first[0] <= 10

    page.get_by_test_id("scrub").evaluate(SCRUB, 300)
    probe.wait(lambda: probe.value("step-count") >= 300, what="the replay to jump to step 300")
    probe.wait(
        lambda: any(n["step"] >= 300 for n in probe.notes("beat")), what="beats after the jump"
    )
    # the jump is a new stream that starts at 300: the steps between are skipped, not fast-forwarded
    jump = next(s for s in streams if "start=300" in s["url"])
    assert jump["steps"] and jump["steps"][0] == 300 and min(jump["steps"]) == 300
    beats = [n["step"] for n in probe.notes("beat")]
    at = next(i for i, step in enumerate(beats) if step >= 300)
    assert all(step >= 300 for step in beats[at:])  # nothing from before the jump sounds after it
    before = beats[:at]  # what played until the jump: the first stream, at its own pace
    assert before == sorted(before) and max(before) < 300

    page.keyboard.press("Space")
    probe.wait(lambda: status(probe) == "replay paused", what="Space to pause the replay")
    page.get_by_role("button", name="Stop replay").click()
    probe.wait(lambda: status(probe) == "ready", what="the replay to stop")
    assert page.get_by_test_id("replay-bar").is_hidden()
    probe.wait(lambda: probe.value("step-count") == 0, what="the counter back at 0")
    assert probe.errors == []


def test_a_bookmark_restores_every_setting_and_the_run_uses_them(probe, server):
    probe.open(BOOKMARK)
    page = probe.page

    def check(hidden: list[int]) -> None:
        assert (
            page.get_by_role("radio", name="Dataset: moons").get_attribute("aria-checked") == "true"
        )
        assert page.get_by_test_id("n-samples").input_value() == "300"
        assert page.get_by_test_id("noise").input_value() == "15"
        assert page.get_by_test_id("train-ratio").input_value() == "70"
        chips = page.locator("#feature-chips [aria-pressed='true']").evaluate_all(
            "els => els.map(e => e.dataset.feature)"
        )
        assert chips == ["x1", "x2", "x1*x2", "sin(x2)"]
        assert probe.text("layer-count") == f"{len(hidden)} hidden layers"
        assert [int(probe.text(f"units-{i + 1}")) for i in range(len(hidden))] == hidden
        for testid, value in (
            ("activation", "relu"), ("optimizer", "adam"), ("lr", "0.003"), ("batch-size", "25"),
            ("regularization", "l2"), ("reg-rate", "0.01"), ("seed", "42"), ("max-steps", "1234"),
        ):  # fmt: skip
            assert page.get_by_test_id(testid).input_value() == value, testid
        assert probe.text("tempo-value") == "13 steps/s"
        assert page.get_by_test_id("show-test").is_checked()
        assert not page.get_by_test_id("loss-log").is_checked()

    check([6, 4, 3])
    page.get_by_test_id("play").click()
    probe.wait(lambda: probe.value("step-count") >= 1, what="the bookmarked run to start")
    run = server.http.get(f"/api/runs/{probe.state()['runId']}").json()
    assert {k: run["config"][k] for k in BOOKMARKED_CONFIG} == BOOKMARKED_CONFIG
    page.keyboard.press("r")
    probe.wait(lambda: status(probe) == "ready", what="the reset")

    page.get_by_test_id("add-neuron-1").click()  # a change is written back to the address
    assert "hidden=7,4,3" in page.evaluate("location.hash")
    page.reload()
    page.get_by_test_id("dataset-moons").wait_for()
    check([7, 4, 3])

    page.evaluate(
        "() => { location.hash = '#dataset=xor&hidden=3&tempo=max'; }"
    )  # another bookmark
    xor = page.get_by_role("radio", name="Dataset: xor")
    probe.wait(
        lambda: xor.get_attribute("aria-checked") == "true", what="the new bookmark's dataset"
    )
    assert probe.text("layer-count") == "1 hidden layer" and probe.text("tempo-value") == "max"
    assert probe.errors == []


def test_a_server_restart_mid_run_ends_in_a_calm_reconnected_page(more_probes, own_server):
    probe = more_probes(own_server)
    probe.open()
    page = probe.page
    page.get_by_test_id("play").click()
    probe.wait(lambda: probe.value("step-count") >= 5, what="the run underway")
    probe.wait(lambda: probe.state()["connection"] == "connected", what="the page connected")
    first_run = probe.state()["runId"]

    own_server.kill()
    connection = page.get_by_test_id("connection")
    probe.wait(lambda: connection.inner_text() == "Reconnecting…", what="a calm reconnecting state")
    assert probe.text("error-run") == ""  # no error wall
    assert status(probe) == "connection lost"  # not a RUNNING the page cannot know

    own_server.start()
    wait_until(own_server.healthy, 30, "the restarted server")
    probe.wait(
        lambda: connection.inner_text() == "Connected", timeout=20, what="the page to reconnect"
    )
    probe.wait(lambda: status(probe) == "interrupted", what="the cut-off run shown as interrupted")
    assert probe.text("banner").startswith("Interrupted at step")
    assert probe.text("error-run") == ""

    page.get_by_test_id("play").click()  # and the show goes on, without a reload
    probe.wait(
        lambda: status(probe) == "running" and probe.state()["runId"] != first_run, what="a new run"
    )
    probe.wait(lambda: probe.value("step-count") >= 3, what="the new run's steps")
    assert probe.exceptions == []


def test_a_run_killed_with_kill_9_offers_no_model_link(more_probes, own_server):
    r = own_server.http.post("/api/runs", json={"steps_per_second": 50, "max_steps": 100_000})
    run_id = r.json()["id"]
    # On disk, not just answered: /metrics also reads the steps still buffered in memory
    # (written every 0.5 s), and a kill -9 before that write leaves a run of 0 stored steps,
    # which the history rightly leaves out. That was this test's flake.
    with contextlib.closing(sqlite3.connect(own_server.data_dir / DB_NAME)) as db:
        sql = "SELECT step FROM runs WHERE id = ?"
        wait_until(lambda: db.execute(sql, (run_id,)).fetchone()[0] >= 5, what="steps on disk")
    own_server.kill()  # SIGKILL: no model is saved
    own_server.start()
    wait_until(own_server.healthy, 30, "the restarted server")
    assert own_server.http.get(f"/api/runs/{run_id}/model").status_code == 404
    assert any(x["id"] == run_id for x in own_server.http.get("/api/runs").json())
    probe = more_probes(own_server)
    probe.open()
    probe.page.get_by_test_id("open-history").click()
    row = probe.page.get_by_test_id(f"history-{run_id}")
    row.wait_for()
    assert "interrupted" in row.inner_text()
    assert row.get_by_test_id(f"csv-{run_id}").is_visible()
    assert row.get_by_test_id(f"model-{run_id}").count() == 0  # no link to a 404


def test_cannot_reach_the_server_clears_once_it_is_back(more_probes, own_server):
    probe = more_probes(own_server)
    probe.open()
    own_server.kill()
    probe.page.get_by_test_id("play").click()
    probe.wait(
        lambda: probe.text("error-run") == "Cannot reach the Backbeat server", what="the error"
    )
    probe.wait(lambda: status(probe) == "connection lost", what="the badge to say so")
    own_server.start()
    wait_until(own_server.healthy, 30, "the restarted server")
    probe.wait(lambda: probe.text("error-run") == "", timeout=20, what="the error to clear")
    probe.wait(lambda: status(probe) == "ready", what="the badge back to Ready")


def test_exports_download_a_valid_csv_and_model(probe):
    probe.open("#features=x1,x2")
    page = probe.page
    for _ in range(5):
        page.keyboard.press("s")  # presses faster than the server answers queue up
    probe.wait(lambda: probe.value("step-count") == 5, what="five steps")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download this run's metrics (CSV)").click()
    assert download.value.suggested_filename.endswith(".csv")
    rows = list(csv.reader(Path(download.value.path()).read_text().splitlines()))
    per_layer = [
        f"{name}_{k}" for name in ("act_rms", "grad_norm", "update_ratio") for k in range(LAYERS)
    ]
    evals = ["train_loss", "test_loss", "train_accuracy", "test_accuracy", "test_entropy"]
    assert rows[0] == [
        *["step", "t", "epoch", "loss", "accuracy", "entropy", "crescendo", *per_layer],
        *evals,
        "event",
    ]
    steps = rows[1:]
    assert [int(r[0]) for r in steps] == [0, 1, 2, 3, 4, 5]  # step 0: the first evaluation
    assert all(float(v) >= 0 for r in steps[1:] for v in r[3 : 7 + len(per_layer)])
    first_eval = dict(zip(rows[0], steps[0], strict=True))
    assert float(first_eval["test_loss"]) > 0 and 0 <= float(first_eval["test_accuracy"]) <= 1

    with page.expect_download() as download:
        page.get_by_role("link", name="Download this run's model (JSON)").click()
    assert download.value.suggested_filename.endswith(".json")
    model = json.loads(Path(download.value.path()).read_text())
    shapes = [(len(layer["weights"]), len(layer["weights"][0])) for layer in model["layers"]]
    assert shapes == [(2, 8), (8, 8), (8, 1)]
    assert [len(layer["biases"]) for layer in model["layers"]] == [8, 8, 1]
    assert model["step"] == 5
    assert model["format"] == "backbeat-model/1" and model["dataset"] == "spiral"
    assert model["features"] == ["x1", "x2"] and model["layer_sizes"] == [2, 8, 8, 1]
    assert model["activations"] == ["tanh", "tanh", "sigmoid"]
    assert model["loss"] == "cross-entropy" and model["config"]["learning_rate"] == 0.03
    assert probe.errors == []


def test_every_control_is_named_and_reduced_motion_holds_still(more_probes):
    probe = more_probes(reduced_motion="reduce")
    probe.open()
    page = probe.page
    unnamed = page.evaluate(UNNAMED_CONTROLS)
    assert unnamed == []
    announced = page.get_by_role("status").filter(has_text="Ready")
    assert announced.count() == 1  # the run's state is a live region
    assert probe.state()["motion"] == "reduced"  # the diagram lights up in place, nothing travels
    play = page.get_by_test_id("play")
    assert play.evaluate("e => getComputedStyle(e).transitionDuration") == "0s"
    play.click()
    probe.wait(lambda: probe.notes("beat"), what="a beat")
    assert probe.errors == []
