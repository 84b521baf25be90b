// A/B by ear: two runs (stored or live) step-aligned, A panned left and B right, charts overlaid.
import { api } from '../api.js';
import { AudioEngine } from '../audio.js';
import { themeColor } from '../canvas.js';
import { RunSocket, frameSteps } from '../socket.js';
import { runLabel } from './runs.js';

export const PAN = { A: -1, B: 1 }; // StereoPannerNode values: A hard left, B hard right
const TICK = 25; // ms between looks at the step cursor
const LOOKAHEAD = 0.3; // s of steps handed to the strips, and scheduled by them, ahead of the audio clock
const START_DELAY = 0.2; // s before the first aligned step
const FUSED_TEMPO = 16; // steps/s when the transport says "as fast as it goes"
const LIVE_STATES = ['starting', 'running', 'paused'];
const CUES = ['chime', 'alarm', 'overfit'];
const OVERLAID = ['loss', 'accuracy', 'entropy', 'grad'];
const FILL_ATTEMPTS = 20; // tries to read steps the socket skipped from the store …
const FILL_RETRY = 250; // ms apart (the recorder flushes within a second)

/** One side of the comparison: its steps by number, its cues, its strip on the desk, maybe a socket. */
class Side {
  constructor(label, run, host) {
    Object.assign(this, { label, run });
    this.steps = new Map();
    this.cues = new Map(); // step → [event]
    this.last = 0; // highest step known
    this.live = LIVE_STATES.includes(run.state);
    this.strip = new AudioEngine({ host, pan: PAN[label], label });
    this.socket = null;
    this.pending = []; // [from, to] ranges being fetched from the store
    this.closed = false;
  }

  addSteps(steps) {
    for (const s of steps) {
      this.steps.set(s.step, s);
      this.last = Math.max(this.last, s.step);
    }
  }

  addCue(ev) {
    if (!this.cues.has(ev.step)) this.cues.set(ev.step, []);
    this.cues.get(ev.step).push(ev);
  }

  /**
   * A live frame: steps it skips past (trained between the stored fetch and the socket, or
   * folded into a summary frame) are fetched from the store, and the comparison holds for them.
   */
  addFrame(steps) {
    if (!steps.length) return;
    const first = steps[0].step - (steps[0].count || 1) + 1;
    const gap = first > this.last + 1 ? [this.last + 1, first - 1] : null;
    const summary = steps[0].count > 1 ? [first, steps[0].step] : null;
    this.addSteps(steps);
    for (const range of [gap, summary]) if (range) this.fill(...range);
  }

  /** Steps from..to (inclusive) from the store, which may lag the socket a little: asked again until there. */
  async fill(from, to) {
    const hold = [from, to];
    this.pending.push(hold);
    try {
      for (let attempt = 0; attempt < FILL_ATTEMPTS && !this.closed; attempt++) {
        const got = frameSteps(await api.steps(this.run.id, from, to + 1));
        for (const s of got) this.steps.set(s.step, s); // real steps replace a summary's stand-in
        if (got.length && got[got.length - 1].step >= to) return;
        if (got.length) from = got[got.length - 1].step + 1;
        await new Promise((r) => setTimeout(r, FILL_RETRY));
      }
    } catch {
      // the store cannot give them: those steps stay silent on this side
    } finally {
      this.pending.splice(this.pending.indexOf(hold), 1);
    }
  }

  /** Still to come: a live run may yet reach `step`, or the store is filling it in. */
  waitsFor(step) {
    return (this.live && step > this.last) || this.pending.some(([a, b]) => step >= a && step <= b);
  }

  close() {
    this.closed = true;
    if (this.socket) this.socket.close();
    this.strip.dispose();
  }
}

export class Compare {
  /** host: the page's AudioEngine; dashboard: the charts; tempo(): steps/s or null; onBegin([idA, idB])/onEnd: the stage gives way / comes back. */
  constructor({ host, dashboard, tempo, onBegin, onEnd, onStatus }) {
    Object.assign(this, { host, dashboard, tempo, onBegin, onEnd, onStatus });
    this.sides = null;
    this.timer = null;
    this.saved = null;
  }

  get active() {
    return this.sides !== null;
  }

  /** The strips, for tests and the console: [{label, pan, muted}]. */
  get strips() {
    return (this.sides || []).map((s) => ({
      label: s.label,
      pan: s.strip.mixer ? s.strip.mixer.panner.pan.value : null,
      muted: s.strip.muted,
      run: s.run.id,
      step: this.cursor - 1,
    }));
  }

  fillMenus(runs) {
    for (const [id, fallback] of [
      ['compare-a', 0],
      ['compare-b', 1],
    ]) {
      const select = document.getElementById(id);
      const keep = select.value;
      select.replaceChildren(...runs.map((r) => new Option(runLabel(r), r.id)));
      if (runs.some((r) => r.id === keep)) select.value = keep;
      else if (runs[fallback]) select.value = runs[fallback].id;
    }
  }

  async start(idA, idB) {
    if (!idA || !idB) throw new Error('Choose two runs.');
    if (idA === idB) throw new Error('Choose two different runs.');
    this.stop();
    this.host.unlock();
    const [runA, runB] = await Promise.all([api.run(idA), api.run(idB)]);
    this.onBegin([runA.id, runB.id]); // a compared live run keeps training when the stage gives way
    const sides = [new Side('A', runA, this.host), new Side('B', runB, this.host)];
    this.sides = sides;
    this.overlay(sides);
    await Promise.all(sides.map((side) => this.load(side)));
    if (this.sides !== sides) return; // stopped while loading
    sides.forEach((side) => side.strip.resetRun(side.run.layers.length - 1));
    this.cursor = 1;
    this.nextTime = null;
    this.timer = setInterval(() => this.tick(), TICK);
    this.onStatus(`A (left): ${runLabel(runA)} — B (right): ${runLabel(runB)}`);
  }

  /** Stored steps now; a live run's new steps and cues as they arrive. */
  async load(side) {
    const data = await api.steps(side.run.id);
    side.addSteps(frameSteps(data));
    (data.events || []).forEach((ev) => side.addCue(ev));
    if (!side.live) return;
    const ended = (state) => !LIVE_STATES.includes(state) && (side.live = false);
    side.socket = new RunSocket(side.run.id, {
      hello: (msg) => ended(msg.run.state), // it may have ended since it was listed: no `end` then
      state: (msg) => ended(msg.state),
      frame: (msg) => side.addFrame(frameSteps(msg)),
      chime: (msg) => side.addCue(msg),
      alarm: (msg) => side.addCue(msg),
      overfit: (msg) => side.addCue(msg),
      end: () => (side.live = false),
    });
    side.socket.open();
  }

  /** Both charts' series become A and B; the stage's own come back on stop. */
  overlay(sides) {
    const d = this.dashboard;
    this.saved = OVERLAID.map((name) => [name, d[name].series]);
    const colors = [themeColor('--series-1'), themeColor('--series-2')];
    for (const name of OVERLAID) {
      const what = name === 'grad' ? ' output-layer gradient' : '';
      d[name].setSeries(
        sides.map((s, i) => [
          s.label,
          `${s.label}${what}: ${s.run.config.optimizer} ${s.run.config.learning_rate}`,
          colors[i],
          { width: 1.8 },
        ]),
      );
      d[name].reset();
    }
  }

  /** Hand aligned steps to both strips up to the lookahead (step k of A and of B at one moment); they schedule them. */
  tick() {
    const ctx = this.host.ctx;
    this.sides.forEach((s) => s.strip.prepare());
    if (!ctx || ctx.state !== 'running' || !this.sides.every((s) => s.strip.live)) return; // strips on the audio clock first
    const now = ctx.currentTime;
    this.handOut(now);
    for (const side of this.sides) side.strip.pump(now, now + LOOKAHEAD); // one clock reading for both
  }

  handOut(now) {
    const interval = 1 / (this.tempo() || FUSED_TEMPO);
    if (this.nextTime === null || this.nextTime < now + 0.02) this.nextTime = now + START_DELAY; // fell behind: realign
    while (this.nextTime < now + LOOKAHEAD) {
      const k = this.cursor;
      if (this.sides.some((s) => s.waitsFor(k) && !s.steps.has(k))) return; // a live run has not got there yet
      if (this.sides.every((s) => k > s.last)) {
        this.finish();
        return;
      }
      for (const side of this.sides) this.play(side, k, this.nextTime);
      this.cursor += 1;
      this.nextTime += interval;
    }
  }

  play(side, k, time) {
    const s = side.steps.get(k);
    if (!s) return;
    side.steps.delete(k);
    side.strip.addTimedSteps([{ time, data: s }]);
    for (const ev of side.cues.get(k) || []) {
      if (ev.type === 'overfit') side.strip.overfitStarted(ev);
      else if (CUES.includes(ev.type)) side.strip.addCue(ev.type, ev, time);
    }
    const d = this.dashboard;
    d.loss.add(side.label, k, s.loss);
    d.accuracy.add(side.label, k, s.accuracy);
    d.entropy.add(side.label, k, s.entropy);
    if (s.grads) d.grad.add(side.label, k, s.grads[s.grads.length - 1]);
  }

  /** The viewer's sound settings reach both strips. */
  setSettings(settings) {
    for (const side of this.sides || []) side.strip.setSettings(settings);
  }

  /** Solo one side (null: both heard). */
  solo(label) {
    for (const side of this.sides || []) side.strip.setMuted(label !== null && side.label !== label);
  }

  finish() {
    clearInterval(this.timer);
    this.timer = null;
    this.onStatus('Both runs played to their last step.');
  }

  /** End the comparison; `back`: the stage returns to its own run (false when a new run takes it). */
  stop({ back = true } = {}) {
    if (!this.sides) return;
    clearInterval(this.timer);
    this.timer = null;
    this.sides.forEach((s) => s.close());
    this.sides = null;
    for (const [name, series] of this.saved) {
      this.dashboard[name].series = series;
      this.dashboard[name].renderKey();
      this.dashboard[name].reset();
    }
    this.saved = null;
    if (back) this.onEnd();
  }
}
