"""The page in a real browser: it loads cleanly, trains from the UI, and sounds what it shows."""

import time
from urllib.parse import urlsplit

import httpx

from app.engine.config import RunConfig
from app.engine.trainer import Trainer

LAYERS = 3  # weight layers of the default network [2, 8, 8, 1]: one echo each


def test_page_loads_without_errors_or_foreign_requests(probe):
    probe.open()
    page = probe.page
    for testid in ("play", "step", "reset", "tempo", "mute", "volume", "lr", "status"):
        assert page.get_by_test_id(testid).is_visible(), testid
    assert page.get_by_role("button", name="Play", exact=True).is_visible()
    assert page.get_by_role("radio", name="Dataset: spiral").get_attribute("aria-checked") == "true"
    page.wait_for_load_state("networkidle")
    assert probe.errors == []
    hosts = {urlsplit(u).netloc for u in probe.requests if not u.startswith(("data:", "blob:"))}
    assert hosts == {urlsplit(probe.server.url).netloc}


def test_play_advances_counters_and_changes_canvases(probe):
    probe.open()
    canvases = ("network", "heatmap", "chart-loss", "chart-grad")
    before = {c: probe.canvas_pixels(c) for c in canvases}
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.value("step-count") >= 12, what="twelve steps on the counter")
    probe.wait(
        lambda: all(probe.canvas_pixels(c) != before[c] for c in canvases),
        what="every canvas to change",
    )
    assert probe.page.get_by_test_id("status").inner_text().lower() == "running"
    run = httpx.get(f"{probe.server.url}/api/runs").json()[0]
    per_epoch = Trainer(RunConfig.model_validate(run["config"])).steps_per_epoch
    counters = (
        "['step-count', 'epoch-count']"
        ".map((id) => Number(document.getElementById(id).dataset.value || 0))"
    )
    step, epoch = probe.wait(
        lambda: (shown := probe.page.evaluate(counters))[1] >= 1 and shown,
        timeout=60,
        what="the epoch counter to reach the first full epoch",
    )
    assert epoch == step // per_epoch  # both counters show the same step


def test_each_beat_has_one_echo_per_layer_output_first(probe):
    probe.open()
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: len(probe.notes("beat")) >= 6, what="six beats")
    notes = probe.notes()
    beats = [n for n in notes if n["kind"] == "beat"]
    steps = [b["step"] for b in beats]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    times = [b["time"] for b in beats]
    assert times == sorted(times)
    for beat in beats:
        echoes = [n for n in notes if n["kind"] == "echo" and n["step"] == beat["step"]]
        assert [e["layer"] for e in echoes] == list(range(LAYERS - 1, -1, -1))
        echo_times = [e["time"] for e in echoes]
        assert echo_times == sorted(echo_times) and echo_times[0] > beat["time"]
        assert all(e["gain"] > 0 and e["frequency"] > 0 for e in echoes)
    # real Web Audio nodes start: at least one oscillator per note scheduled so far
    assert probe.page.evaluate("window.__oscillatorStarts") >= len(notes)
    now = probe.page.evaluate("window.backbeat.audio.ctx.currentTime")
    assert beats[0]["time"] <= now + 1.0  # notes live on the audio clock


def test_master_gain_rises_as_loss_falls(probe):
    probe.open(
        "#dataset=gauss&optimizer=sgd&learning_rate=0.1&max_steps=3000&stop_at_convergence=false"
    )
    probe.set_tempo(700)  # about 100 steps/s
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.notes("beat"), what="the first beat")
    gain = "window.backbeat.audio.master.gain.value"
    early = probe.page.evaluate(gain)
    early_crescendo = probe.page.evaluate("window.backbeat.audio.crescendo")
    probe.wait(
        lambda: probe.page.evaluate(gain) > early + 0.15,
        timeout=40,
        what="the master gain to swell",
    )
    assert probe.page.evaluate("window.backbeat.audio.crescendo") > early_crescendo
    first, last = probe.notes("beat")[0], probe.notes("beat")[-1]
    assert last["frequency"] > first["frequency"]  # the melody climbs as loss falls


def test_diverging_run_sounds_the_alarm_then_silence(probe):
    probe.open("#dataset=spiral&learning_rate=10&activation=relu")
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.notes("alarm"), timeout=30, what="the alarm")
    alarm = probe.notes("alarm")[0]
    probe.wait(
        lambda: probe.page.get_by_test_id("status").inner_text().lower() == "diverged",
        what="the diverged state",
    )
    assert probe.page.get_by_test_id("banner").inner_text().startswith("Diverged")
    sounding = [n for n in probe.notes() if n["kind"] in ("beat", "echo")]
    assert [n for n in sounding if n["time"] > alarm["time"] + 1] == []


def test_pause_step_and_reset(probe, server):
    probe.open()
    page = probe.page
    status = page.get_by_test_id("status")
    page.get_by_test_id("play").click()
    probe.wait(lambda: probe.value("step-count") >= 3, what="three steps")
    page.get_by_test_id("play").click()
    probe.wait(lambda: status.inner_text().lower() == "paused", what="the paused state")
    run_id = page.evaluate("window.backbeat.state.runId")
    paused_at = server.http.get(f"/api/runs/{run_id}").json()["step"]
    # the counter follows the heard step, a jitter buffer behind the stream: it catches up
    probe.wait(lambda: probe.value("step-count") == paused_at, what="the counter at the pause")
    page.get_by_test_id("step").click()
    probe.wait(lambda: probe.value("step-count") == paused_at + 1, what="one more step")
    assert status.inner_text().lower() == "paused"
    page.get_by_test_id("reset").click()
    probe.wait(lambda: probe.value("step-count") == 0, what="the counter to reset")
    assert status.inner_text().lower() == "ready"
    probe.wait(
        lambda: server.http.get(f"/api/runs/{run_id}").json()["state"] == "stopped",
        what="the server run to stop",
    )


def test_step_from_idle_starts_a_paused_run(probe):
    probe.open()
    probe.page.get_by_test_id("step").click()
    probe.wait(lambda: probe.value("step-count") == 1, what="the first step")
    assert probe.page.get_by_test_id("status").inner_text().lower() == "paused"
    probe.wait(lambda: probe.notes("beat"), what="the step's beat")


def test_tempo_changes_mid_run(probe, server):
    probe.open()
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.value("step-count") >= 1, what="the run to start")
    run_id = probe.page.evaluate("window.backbeat.state.runId")
    probe.page.get_by_test_id("tempo-max").click()
    probe.wait(
        lambda: server.http.get(f"/api/runs/{run_id}").json()["steps_per_second"] is None,
        what="the server to run unpaced",
    )
    probe.wait(lambda: probe.value("step-count") > 500, what="steps at full speed")


def test_invalid_setting_shows_its_error_next_to_the_control(probe):
    probe.open()
    page = probe.page
    page.get_by_test_id("seed").fill("-5")
    page.get_by_test_id("seed").press("Tab")
    page.get_by_test_id("play").click()
    error = page.get_by_test_id("error-seed")
    probe.wait(lambda: error.is_visible() and error.inner_text(), what="the seed's error")
    assert page.get_by_test_id("seed").get_attribute("aria-invalid") == "true"
    assert page.get_by_test_id("status").inner_text().lower() == "ready"
    assert page.get_by_test_id("error-run").inner_text() == ""


def test_busy_server_says_so_beside_play(probe, server):
    probe.open()
    probe.page.wait_for_load_state("networkidle")  # past the page's look for a live run to join
    for _ in range(2):  # the server trains two runs at once by default
        r = server.http.post("/api/runs", json={"start_paused": True})
        assert r.status_code == 201, r.text
    probe.page.get_by_test_id("play").click()
    error = probe.page.get_by_test_id("error-run")
    probe.wait(lambda: "already training" in error.inner_text(), what="the busy message")
    assert probe.page.get_by_test_id("status").inner_text().lower() == "ready"


def test_keyboard_space_plays_and_pauses(probe):
    probe.open()
    probe.page.keyboard.press("Space")
    probe.wait(lambda: probe.value("step-count") >= 1, what="a step after Space")
    probe.page.keyboard.press("Space")
    status = probe.page.get_by_test_id("status")
    probe.wait(lambda: status.inner_text().lower() == "paused", what="pause after Space")


def test_digits_show_samples_and_confusion(probe):
    probe.open("#dataset=digits&hidden=16")
    assert probe.page.get_by_test_id("heatmap").is_hidden()
    before = {c: probe.canvas_pixels(c) for c in ("digits", "confusion")}
    probe.page.get_by_test_id("tempo-max").click()
    probe.page.get_by_test_id("play").click()
    probe.wait(
        lambda: all(probe.canvas_pixels(c) != before[c] for c in before),
        what="digit samples and the confusion matrix",
    )


def test_convergence_rings_the_chime_once(probe):
    probe.open("#dataset=gauss&learning_rate=0.1&max_steps=4000")
    probe.set_tempo(800)  # about 220 steps/s
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.notes("chime"), timeout=40, what="the chime")
    probe.wait(
        lambda: probe.page.get_by_test_id("status").inner_text().lower() == "converged",
        timeout=40,
        what="the song to end on its chime",
    )
    assert len(probe.notes("chime")) == 1
    assert probe.page.evaluate("window.backbeat.state.mood") == "converged"


def test_overfitting_adds_a_detuned_test_voice(probe):
    probe.open(
        "#dataset=xor&n_samples=40&noise=0.5&optimizer=adam&learning_rate=0.03"
        "&hidden=32,32&batch_size=5&max_steps=3000"
    )
    probe.set_tempo(650)  # about 70 steps/s
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.notes("test-voice"), timeout=40, what="the test voice")
    voice = probe.notes("test-voice")[0]
    beat = next(n for n in probe.notes("beat") if n["step"] == voice["step"])
    assert voice["time"] == beat["time"]
    assert voice["frequency"] > beat["frequency"]  # sharp of the train voice, by the gap
    assert probe.page.get_by_test_id("chart-loss").is_visible()


def test_badge_follows_the_stream_in_order_when_its_messages_lag(probe, server):
    """The PAUSED-while-running race: an HTTP answer overtook a state message still on its way."""
    lag = 1.5  # s: every server message reaches the page this late, in order
    held: list = []
    sockets: list = []

    def lagging(ws):
        upstream = ws.connect_to_server()
        upstream.on_message(lambda m: held.append((time.monotonic() + lag, ws, m)))
        ws.on_message(upstream.send)
        sockets.append(ws)

    def pumped(until):
        """A wait condition that first delivers the held messages that are due."""

        def check():
            while held and held[0][0] <= time.monotonic():
                _, ws, message = held.pop(0)
                ws.send(message)
            return until()

        return check

    probe.page.route_web_socket("**/ws/runs/**", lagging)
    probe.open("#max_steps=100000")
    probe.page.get_by_test_id("play").click()
    probe.wait(pumped(lambda: status_text(probe) == "running"), what="the run under way")
    run_id = probe.state()["runId"]
    probe.page.evaluate("""() => {
      window.__badge = [];
      const el = document.querySelector('[data-testid="status"]');
      const seen = () => window.__badge.push(el.textContent);
      new MutationObserver(seen).observe(el, {childList: true});
    }""")
    probe.page.keyboard.press("Space")  # pause, then resume: both answered long before the
    probe.page.keyboard.press("Space")  # stream says "paused" and then "running"
    probe.wait(
        pumped(lambda: server.http.get(f"/api/runs/{run_id}").json()["state"] == "running"),
        what="the second Space to resume the run (a press while busy is not lost)",
    )
    probe.wait(pumped(lambda: not held), timeout=30, what="every held message delivered")
    probe.wait(pumped(lambda: status_text(probe) == "running"), what="the badge to say running")
    badge = probe.page.evaluate("window.__badge")
    shown = [t for i, t in enumerate(badge) if badge[i - 1 : i] != [t]]
    # each state the run went through, once, in order (or none, if the pause was too short to see);
    # never "Paused" again after "Running" while the run plays on
    assert shown in ([], ["Paused", "Running"]), shown


def status_text(probe) -> str:
    return probe.text("status").lower()
