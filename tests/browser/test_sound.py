"""Sound you can trust: absolute echo levels on the graph, loudness free of entropy, cues that make
room, the editor's presets in the URL, A/B panning, and WAV / MIDI / WebM exports."""

import math
import struct
import time
import wave

import mido
import pytest

from app.web.devserver import wait_until

BEAT_GAIN = 0.42  # the engine's beat level; echoes are stated in dB re this
ATTACK = 0.004  # s, envelope attack in voices.js: a note's peak ramp ends here
EXPORT_LEAD, EXPORT_TAIL = 0.25, 3.0  # s, stated in static/js/sound/render.js and docs/sound.md
QUICK = {"dataset": "xor", "steps_per_second": None, "optimizer": "sgd"}  # no chime: pure steps

# Feed the page's own engine two synthetic runs (one echo level per step) and return its notes.
FEED_RUNS = """async (runs) => {
  const a = window.backbeat.audio;
  a.unlock();
  const pause = () => new Promise((r) => setTimeout(r, 25));
  const until = async (ok) => { for (let i = 0; i < 400 && !ok(); i++) await pause(); };
  await until(() => a.live && a.ctx.currentTime > 0.5); // past the audio clock's start-up jumps
  for (const norms of runs) {
    a.resetRun(3);
    const t0 = a.ctx.currentTime + 0.5;
    a.addTimedSteps(norms.map((g, i) => ({ time: t0 + i * 0.12,
      data: { step: i + 1, loss: 1, entropy: 0.3, crescendo: 0.5, grads: [g, g, g] } })));
    await until(() => a.head >= a.buffer.length && a.group.count === 0);
    await new Promise((r) => setTimeout(r, 200));
  }
}"""


def create_run(server, **config) -> str:
    r = server.http.post("/api/runs", json={**QUICK, **config})
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    wait_until(
        lambda: (
            server.http.get(f"/api/runs/{run_id}").json()["state"]
            in ("finished", "converged", "diverged")
        ),
        60,
        "the run to finish",
    )
    return run_id


def peak(ramps, time):
    """The envelope peak a note ramps to ATTACK after it starts (the last one scheduled there)."""
    hits = [v for v, t in ramps if abs(t - (time + ATTACK)) < 1e-7]
    assert hits, f"no envelope peak at {time}"
    return hits[-1]


def test_echo_gain_is_absolute_monotonic_and_the_same_in_two_runs(probe):
    probe.open()
    vanishing = [1e-5, 1e-4, 3e-4, 1e-3, 0.01, 0.05]
    exploding = [0.05, 0.1, 0.3, 1, 3, 30, None]  # None: the server saw NaN/Inf
    probe.page.evaluate(FEED_RUNS, [vanishing, exploding])
    ramps = probe.page.evaluate("window.__ramps")
    echoes = [n for n in probe.notes("echo")]
    assert len(echoes) == 3 * (len(vanishing) + len(exploding))
    split = 3 * len(vanishing)
    heard = []  # (norm, peak on the graph, run)
    runs = ((echoes[:split], vanishing), (echoes[split:], exploding))
    for run, (notes, norms) in enumerate(runs):
        for i, n in enumerate(notes):
            heard.append((norms[i // 3], peak(ramps, n["time"]), run))
    key = lambda h: math.inf if h[0] is None else h[0]  # noqa: E731
    ordered = sorted(heard, key=key)
    peaks = [p for _, p, _ in ordered]
    assert peaks == sorted(peaks), "echo level must rise with gradient norm, across both runs"
    by_norm = {}
    for g, p, run in heard:
        by_norm.setdefault((g, run), p)
    same = by_norm[(0.05, 0)], by_norm[(0.05, 1)]
    assert same[0] == pytest.approx(same[1], rel=1e-6), "the same norm sounds the same in two runs"
    decade = 20 * math.log10(by_norm[(0.1, 1)] / by_norm[(0.01, 0)])
    assert decade == pytest.approx(10, abs=0.01)  # 10 dB per decade, stated in docs/sound.md
    floor, cap = by_norm[(1e-5, 0)], by_norm[(None, 1)]
    assert floor > 0 and 20 * math.log10(cap / floor) == pytest.approx(45, abs=0.01)
    assert by_norm[(30, 1)] == pytest.approx(cap)  # exploding norms are capped at the beat's level
    echo_db = [n["db"] for n in echoes]
    assert max(echo_db) == 0 and min(echo_db) == -45


def test_beat_loudness_does_not_change_with_entropy(probe):
    """Rendered on the graph: the beat's power at entropy 0, 0.5 and 1 stays within 1 dB."""
    probe.open()
    levels = probe.page.evaluate(
        """async () => {
      const voices = await import('/static/js/voices.js');
      const { breathSplit } = await import('/static/js/sonify.js');
      const out = {};
      for (const instrument of ['bell', 'pluck', 'marimba', 'sine']) {
        for (const freq of [261.63, 523.25, 1046.5]) {
          for (const entropy of [0, 0.5, 1]) {
            const ctx = new OfflineAudioContext(1, 44100 * 0.6, 44100);
            voices.beat(ctx, { tone: ctx.destination, breath: ctx.destination },
              { instrument, time: 0.01, freq, gain: 0.42, split: breathSplit(entropy),
                decay: 0.5 });
            const data = (await ctx.startRendering()).getChannelData(0);
            let sum = 0;
            for (const v of data) sum += v * v;
            out[`${instrument} ${freq} ${entropy}`] = 10 * Math.log10(sum / data.length);
          }
        }
      }
      return out;
    }"""
    )
    for name, db in levels.items():
        instrument, freq, _ = name.split()
        pure = levels[f"{instrument} {freq} 0"]
        assert abs(db - pure) < 1.0, f"{name}: {db - pure:+.2f} dB against entropy 0"


def test_diverged_step_is_heard_before_the_alarm_then_silence(probe):
    probe.open("#dataset=spiral&learning_rate=10&activation=relu")
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.notes("alarm"), timeout=30, what="the alarm")
    alarm = probe.notes("alarm")[0]
    own = [n for n in probe.notes() if n["step"] == alarm["step"] and n["kind"] in ("beat", "echo")]
    assert [n["kind"] for n in own] == ["beat", "echo", "echo", "echo"], own
    assert max(n["time"] for n in own) < alarm["time"], "the explosion sounds before the alarm"
    sounding = [n for n in probe.notes() if n["kind"] in ("beat", "echo")]
    later = [n for n in sounding if n["time"] > alarm["time"]]
    assert later == []


def test_beats_duck_under_the_chime(probe):
    probe.open("#dataset=gauss&learning_rate=0.1&max_steps=4000")
    probe.set_tempo(800)
    probe.page.get_by_test_id("play").click()
    probe.wait(lambda: probe.notes("chime"), timeout=40, what="the chime")
    ducker = "window.backbeat.audio.mixer.ducker.gain.value"
    probe.wait(lambda: probe.page.evaluate(ducker) < 0.3, timeout=10, what="the beats to duck")
    probe.wait(lambda: probe.page.evaluate(ducker) > 0.9, timeout=15, what="the beats to return")


def test_presets_round_trip_through_the_url_and_stay_per_viewer(probe, more_probes):
    probe.open()
    page = probe.page
    page.get_by_test_id("open-sound").click()
    page.get_by_test_id("sound-preset").select_option("minimal")
    assert "sound=minimal" in page.url
    off = page.evaluate("window.backbeat.audio.settings.off")
    assert off == ["echoes", "breath", "test", "cues"]
    assert "+10 dB per 10×" in probe.text("legend-echo")
    page.get_by_test_id("sound-preset").select_option("contrast")
    assert "+15 dB per 10×" in probe.text("legend-echo")  # the legend states this viewer's mapping
    page.get_by_test_id("sound-target").select_option("pitch")
    assert "4 semitones higher per 10×" in probe.text("legend-echo")
    page.get_by_test_id("sound-target").select_option("loudness")
    page.get_by_test_id("sound-scale").select_option("minor")
    page.get_by_test_id("voice-solo-echoes").check()
    url = page.url
    assert "sound=scale" in url and "minor" in url
    expected = page.evaluate("window.backbeat.audio.settings")
    assert expected["solo"] == ["echoes"] and expected["contrast"] == "high"

    # the same link in another browser gives the same sound …
    other = more_probes()
    other.page.goto(url)
    other.page.get_by_test_id("dataset-spiral").wait_for()
    assert other.page.evaluate("window.backbeat.audio.settings") == expected
    assert other.page.get_by_test_id("sound-scale").input_value() == "minor"
    assert other.page.get_by_test_id("sound-preset").input_value() == ""  # custom
    # … and a preset link too
    for name in ("classic", "minimal", "contrast"):
        other.page.goto(f"{probe.server.url}/#sound={name}")
        other.page.get_by_test_id("dataset-spiral").wait_for()
        assert other.page.get_by_test_id("sound-preset").input_value() == name
    # this browser remembers its own choice without the link; a third viewer keeps Classic
    again = page.context.new_page()
    again.goto(probe.server.url + "/")
    again.get_by_test_id("dataset-spiral").wait_for()
    assert again.evaluate("window.backbeat.audio.settings") == expected
    fresh = more_probes()
    fresh.open()
    assert fresh.page.evaluate("window.backbeat.audio.settings.solo") == []
    assert fresh.page.get_by_test_id("sound-preset").input_value() == "classic"


def test_a_bad_sound_link_is_reported_and_still_plays(probe):
    probe.open("#sound=scale:blues,beats:kazoo")
    assert "blues" in probe.text("sound-problems")
    assert probe.page.evaluate("window.backbeat.audio.settings.scale") == "pentatonic"


def test_ab_compare_pans_a_left_b_right_aligned_by_step(probe, server):
    slow = create_run(server, learning_rate=0.03, max_steps=80)
    fast = create_run(server, learning_rate=0.3, max_steps=60)
    probe.open()
    page = probe.page
    page.get_by_test_id("open-sound").click()
    page.get_by_test_id("compare-a").select_option(slow)
    page.get_by_test_id("compare-b").select_option(fast)
    page.get_by_test_id("compare-start").click()
    probe.wait(
        lambda: {n.get("run") for n in probe.notes("beat")} >= {"A", "B"},
        timeout=30,
        what="beats from both runs",
    )
    pans = page.evaluate(
        "window.backbeat.sound.compare.sides.map((s) => [s.label, s.strip.mixer.panner.pan.value,"
        " s.strip.mixer.panner instanceof StereoPannerNode])"
    )
    assert pans == [["A", -1, True], ["B", 1, True]]
    probe.wait(lambda: len(probe.notes("beat")) >= 20, timeout=30, what="twenty beats")
    beats = probe.notes("beat")
    at = {(n["run"], n["step"]): n["time"] for n in beats}
    shared = [s for (r, s) in at if r == "A" and ("B", s) in at]
    assert len(shared) >= 5
    assert all(at[("A", s)] == pytest.approx(at[("B", s)], abs=1e-9) for s in shared)
    keys = page.evaluate("[...window.backbeat.sound.compare.dashboard.loss.series.keys()]")
    assert keys == ["A", "B"]
    points = page.evaluate(
        "[...window.backbeat.sound.compare.dashboard.loss.series.values()].map((s) => s.length)"
    )
    assert all(p > 0 for p in points), "both runs drawn on the loss chart"

    page.get_by_test_id("compare-solo-a").click()
    muted = page.evaluate("window.backbeat.sound.compare.strips.map((s) => s.muted)")
    assert muted == [False, True]
    probe.wait(
        lambda: (
            page.evaluate("window.backbeat.sound.compare.sides[1].strip.master.gain.value") < 1e-3
        ),
        what="B to fall silent",
    )
    page.get_by_test_id("compare-stop").click()
    assert page.evaluate("window.backbeat.sound.compare.active") is False


def test_ab_compare_plays_a_live_run_on_stage_to_its_end_without_stopping_it(probe, server):
    """Every step of B is heard in step with A, even those trained before its socket opened."""
    stored = create_run(server, max_steps=40)
    r = server.http.post(
        "/api/runs",
        json={**QUICK, "steps_per_second": 8, "max_steps": 40, "stop_at_convergence": False},
    )
    live = r.json()["id"]
    probe.open()
    probe.wait(lambda: probe.state()["runId"] == live, what="the page to join the live run")
    page = probe.page

    def stale(route):  # the stored steps arrive late: the socket then starts steps after them
        response = route.fetch()
        time.sleep(1.5)
        route.fulfill(response=response)

    page.route(f"**/api/runs/{live}/metrics?start=0", stale, times=1)
    page.get_by_test_id("open-sound").click()
    page.get_by_test_id("compare-a").select_option(stored)
    page.get_by_test_id("compare-b").select_option(live)
    page.get_by_test_id("compare-start").click()
    probe.wait(
        lambda: any(n.get("run") == "B" and n["step"] == 40 for n in probe.notes("beat")),
        timeout=40,
        what="B's last step, trained after the comparison began",
    )
    assert server.http.get(f"/api/runs/{live}").json()["state"] == "finished"  # not stopped
    at = {(n["run"], n["step"]): n["time"] for n in probe.notes("beat") if n.get("run")}
    assert all(at[("A", s)] == pytest.approx(at[("B", s)], abs=1e-9) for s in range(1, 41))
    probe.wait(lambda: "Both runs played" in probe.text("compare-status"), what="the end")


def read_wav(path):
    with wave.open(str(path)) as w:
        frames = w.readframes(w.getnframes())
        return w.getnchannels(), w.getframerate(), w.getnframes(), frames


def export(probe, run_id, button, tempo):
    page = probe.page
    page.get_by_test_id("open-sound").click()
    page.get_by_test_id("export-run").select_option(run_id)
    page.get_by_test_id("export-tempo").fill(str(tempo))
    with page.expect_download(timeout=60_000) as download:
        page.get_by_test_id(button).click()
    return download.value


def test_wav_export_is_valid_timed_and_not_silent(probe, server, tmp_path):
    steps, tempo = 40, 8
    run_id = create_run(server, max_steps=steps)
    probe.open()
    download = export(probe, run_id, "export-wav", tempo)
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    assert path.suffix == ".wav"
    channels, rate, n, frames = read_wav(path)
    assert (channels, rate) == (2, 44100)
    seconds = n / rate
    # stated: steps ÷ tempo, plus a 0.25 s lead-in and a 3 s ring-out, to one sample
    assert seconds == pytest.approx(steps / tempo + EXPORT_LEAD + EXPORT_TAIL, abs=1 / rate)
    samples = struct.unpack(f"<{n * channels}h", frames)
    during = samples[: int((steps / tempo) * rate) * channels]
    rms = math.sqrt(sum(s * s for s in during) / len(during)) / 32768
    assert rms > 0.01, f"the beats should be heard (RMS {rms:.4f})"
    assert probe.page.get_by_test_id("export-progress").evaluate("(p) => p.value") == 1
    assert "Audio ready" in probe.text("export-status")


# Render identical steps with the export's engine; the peak (dBFS) of each step's second.
RENDER_STEPS = """async ({ settings, crescendo }) => {
  const { renderAudio, EXPORT_LEAD } = await import('/static/js/sound/render.js');
  const { decodeSettings } = await import('/static/js/sound/settings.js');
  const steps = [1, 2, 3, 4].map((step) =>
    ({ step, loss: 1, entropy: 0, crescendo, grads: [0.1] }));
  const out = await renderAudio({ layers: [2, 1], steps, events: [] },
    { tempo: 1, settings: decodeSettings(settings).settings });
  const [left] = out.channels;
  return steps.map((_, i) => {
    let peak = 0;
    const from = Math.round((EXPORT_LEAD + i) * out.sampleRate);
    const to = from + 0.9 * out.sampleRate;
    for (let k = from; k < to; k++) peak = Math.max(peak, Math.abs(left[k]));
    return 20 * Math.log10(peak);
  });
}"""


@pytest.mark.parametrize("settings", ["classic", "solo:echoes"])
def test_a_wav_exports_first_beat_sounds_as_loud_as_the_next(probe, settings):
    """No fade-in: not the master ramping from silence (a range from mid-run starts at its own
    swell), not a switched-off voice fading out, not the limiter opening."""
    probe.open()
    peaks = probe.page.evaluate(RENDER_STEPS, {"settings": settings, "crescendo": 0.9})
    assert all(abs(p - peaks[-1]) < 0.5 for p in peaks), [round(p, 2) for p in peaks]


def test_midi_export_has_one_beat_per_step_and_crescendo_as_velocity(probe, server, tmp_path):
    steps, tempo = 48, 8
    run_id = create_run(server, max_steps=steps)
    probe.open()
    download = export(probe, run_id, "export-midi", tempo)
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    midi = mido.MidiFile(str(path))
    tracks = {t.name: t for t in midi.tracks}
    assert {"Beats", "Echoes", "Test voice", "Cues"} <= set(tracks)
    on = lambda t: [m for m in t if m.type == "note_on" and m.velocity > 0]  # noqa: E731
    beats = on(tracks["Beats"])
    assert len(beats) == steps
    assert len(on(tracks["Echoes"])) == 3 * steps
    crescendo = server.http.get(f"/api/runs/{run_id}/metrics").json()["crescendo"]
    expected = [round(127 * math.sqrt(0.3 + 0.7 * c)) for c in crescendo]
    assert [m.velocity for m in beats] == expected
    seconds = midi.length
    assert seconds == pytest.approx((steps - 1) / tempo, abs=0.7)  # last beat + its note length


def test_exports_state_their_length_limit(probe, server):
    run_id = create_run(server, max_steps=100)
    probe.open()
    page = probe.page
    page.get_by_test_id("open-sound").click()
    page.get_by_test_id("export-run").select_option(run_id)
    page.get_by_test_id("export-tempo").fill("0.1")  # 100 steps at 0.1 steps/s = 16.7 min
    page.get_by_test_id("export-wav").click()
    probe.wait(lambda: "limited to 10 min" in probe.text("export-status"), what="the limit")


def test_record_clip_saves_a_webm_with_video_and_sound(probe, tmp_path):
    probe.open()
    page = probe.page
    page.get_by_test_id("play").click()
    page.get_by_test_id("open-sound").click()
    page.get_by_test_id("record-clip").click()
    probe.wait(
        lambda: page.evaluate("(window.backbeat.sound.clip.chunks || []).length") >= 1,
        timeout=20,
        what="recorded data",
    )
    with page.expect_download(timeout=30_000) as download:
        page.get_by_test_id("record-clip").click()
    path = tmp_path / "clip.webm"
    download.value.save_as(path)
    data = path.read_bytes()
    assert data[:4] == b"\x1a\x45\xdf\xa3" and len(data) > 1000  # EBML (WebM) header
    tracks = page.evaluate("window.backbeat.sound.clip.kinds")
    assert sorted(tracks) == ["audio", "video"]
