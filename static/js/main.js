// Wiring only: the form and transport start runs; the socket feeds sound, pictures and charts.
import { api, exportUrls, getToken, setToken } from './api.js';
import { AudioEngine } from './audio.js';
import { themeChanged } from './canvas.js';
import { ConnectionStatus } from './connection.js';
import { Transport } from './controls.js';
import { Dashboard } from './dashboard.js';
import { ConfusionMatrix, DigitGallery } from './digits.js';
import { FEATURE_LABELS, RunForm } from './form.js';
import { readHash, updateHash } from './hash.js';
import { DecisionHeatmap } from './heatmap.js';
import { RunHistory, formatLoss, hasModel } from './history.js';
import { bindKeys, renderHelp } from './keys.js';
import { ModelWatcher } from './model.js';
import { NetworkDiagram } from './network.js';
import { PresenterMode } from './presenter.js';
import { Replayer } from './replay.js';
import { RunSocket, frameSteps, historySteps } from './socket.js';
import { SoundGate } from './soundgate.js';
import { previewPoints } from './thumbs.js';

const POLL = 3000; // ms between looks at the server: viewers follow the live run, everyone sees the link state
const BANNER_TIME = 6000; // ms a converged / overfitting banner stays up (diverged and interrupted stay)
const PREVIEW_MAX_POINTS = 600;
const PAST_POINTS = 1000; // steps fetched to draw what came before a scrubbed replay's start
const LIVE_STATES = ['starting', 'running', 'paused'];

const TOKEN_KEY = 'backbeat-token'; // sessionStorage: the presenter token survives reloads

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const presenter = await presenterSession();

const audio = new AudioEngine();
const dashboard = new Dashboard();
const heatmap = new DecisionHeatmap($('heatmap'));
const gallery = new DigitGallery($('digits'));
const confusion = new ConfusionMatrix($('confusion'));
const network = new NetworkDiagram($('network'), () => form.layers.align((i) => network.columnX(i)));
const model = new ModelWatcher((m) => network.setWeights(m));
const form = new RunForm(await api.datasets().catch(() => null), configChanged);
const transport = new Transport({ form, audio, onStart: (id) => watch(id), onReset: clearRun });
const replayer = new Replayer({
  play: replayFrom,
  halt: () => closeSocket(),
  tempo: () => transport.tempo,
  onState: (state) => transport.setState(state),
  onStop: () => transport.reset(),
});
transport.replay = replayer;
const runHistory = new RunHistory({ onReplay: replay, onWatch: (run) => joinRun(run.id) });
const connection = new ConnectionStatus($('connection'));
const soundGate = new SoundGate($('enable-sound'), audio);
const stageMode = new PresenterMode($('presenter'), presenterChanged);
const view = { step: 0, epoch: 0, gaps: 0, run: null, listening: null, past: null, seek: 0 };
let socket = null;

// A small debug handle for tests and the console.
window.backbeat = {
  audio,
  get state() {
    return {
      runId: transport.runId, runState: transport.state, step: view.step, epoch: view.epoch, gaps: view.gaps,
      mood: document.body.dataset.mood, connection: connection.state, motion: network.motion,
      replaying: replayer.active, shownRun: view.run && view.run.id,
    };
  },
};

/** Listen to a run; resolves once its hello has arrived. */
function watch(runId, options = {}) {
  closeSocket();
  view.past = options.past || null;
  const listening = new Promise((resolve) => (view.listening = resolve));
  socket = new RunSocket(runId, handlers, { ...options, token: getToken() });
  socket.open();
  if (options.replay) model.stop(); // stored weights are the final ones: wrong for a replay's early steps
  else model.watch(runId);
  return listening;
}

function closeSocket() {
  if (socket) socket.close();
  socket = null;
}

const handlers = {
  hello(msg) {
    const r = msg.run;
    const replaying = r.state === 'replaying';
    view.run = r;
    form.showConfig(r.config);
    const layers = r.layers.length - 1;
    audio.resetRun(layers);
    audio.primeHistory(msg.history || {}, r.state === 'diverged');
    dashboard.reset(layers);
    if (view.past) primePast(view.past);
    dashboard.addSteps(historySteps(msg.history || {}));
    (msg.evals || []).forEach((ev) => dashboard.addEval(ev));
    network.clearPulses();
    network.setArchitecture(r.layers, inputLabels(r.features), outputLabels(r.n_classes));
    showOutput(r.config.dataset === 'digits', r.task);
    if (msg.last_eval) applyEval(msg.last_eval, false);
    const kinds = new Set((msg.events || []).map((e) => e.type));
    if (kinds.has('overfit') && msg.last_eval) audio.overfitStarted(msg.last_eval);
    setMood(kinds.has('alarm') ? 'diverged' : kinds.has('chime') ? 'converged' : kinds.has('overfit') ? 'overfit' : 'idle');
    if (kinds.has('alarm')) banner('diverged', 'Diverged');
    else if (r.state === 'interrupted') banner('interrupted', interruptedText(r.step));
    else banner(null, '');
    if (replaying) transport.setState('replaying');
    else {
      transport.adopt(r.id, r.state);
      transport.showRunTempo(r.steps_per_second);
    }
    view.step = replaying ? Math.max(0, (socket.from || 0) - 1) : r.step;
    view.epoch = r.epoch ?? 0;
    model.setRunning(r.state === 'running');
    showExports(r);
    loadData(r);
    if (view.listening) view.listening();
    view.listening = null;
  },
  frame(msg) {
    const steps = frameSteps(msg);
    if (!steps.length) return;
    audio.addSteps(steps);
    dashboard.addSteps(steps);
    const last = steps[steps.length - 1];
    view.step = last.step;
    view.epoch = last.epoch;
    replayer.progress(last.step);
  },
  eval: (ev) => applyEval(ev, true),
  state(msg) {
    transport.setState(msg.state);
    if (msg.steps_per_second !== undefined) transport.showRunTempo(msg.steps_per_second);
    model.setRunning(msg.state === 'running');
  },
  chime(msg) {
    audio.addCue('chime', msg);
    setMood('converged');
    banner('converged', `Converged at step ${msg.step.toLocaleString('en-US')}`);
  },
  alarm(msg) {
    audio.addCue('alarm', msg);
    setMood('diverged');
    banner('diverged', `Diverged at step ${msg.step.toLocaleString('en-US')}${msg.reason ? ` — ${msg.reason}` : ''}`);
  },
  overfit(msg) {
    audio.overfitStarted(msg);
    dashboard.setOverfit(true);
    if (document.body.dataset.mood !== 'converged') setMood('overfit');
    banner('overfit', 'Overfitting: test loss rising while train loss falls');
  },
  end(msg) {
    transport.setState(msg.state);
    model.setRunning(false);
    if (replayer.active) replayer.finished();
    else if (view.run) {
      view.run = { ...view.run, state: msg.state };
      showExports(view.run);
    }
    if (msg.state === 'interrupted' && !replayer.active) banner('interrupted', interruptedText(msg.step));
    if (runHistory.isOpen) runHistory.refresh();
  },
  gap(missing) {
    view.gaps += missing;
  },
  connection(status) {
    connection.socket(status);
    if (status === 'unknown-run') transport.showError('That run no longer exists.');
    if (status === 'refused') transport.showError('The server refused this page’s connection.');
  },
};

function applyEval(ev, live) {
  if (ev.grid) heatmap.setGrid(ev.grid);
  if (ev.predictions) gallery.setPredictions(ev.predictions);
  if (ev.confusion) confusion.set(ev.confusion);
  $('train-loss').textContent = formatLoss(ev.train_loss);
  $('test-loss').textContent = formatLoss(ev.test_loss);
  if (!live) return;
  dashboard.addEval(ev);
  audio.evalArrived(ev);
  if (!audio.overfitting && document.body.dataset.mood === 'overfit') {
    setMood('idle');
    dashboard.setOverfit(false);
  }
}

async function loadData(r) {
  try {
    const data = await api.data(r.id);
    if (view.run !== r) return;
    if (data.train.points) heatmap.setPoints(data.train, data.test);
    else gallery.setImages(data.test.x, data.test.y);
  } catch {
    // the picture keeps the preview points
  }
}

let bannerTimer = null;

/** A big one-line message over the diagram, readable from the back of the room. */
function banner(kind, text) {
  const el = $('banner');
  clearTimeout(bannerTimer);
  el.hidden = !text;
  el.dataset.kind = kind || '';
  el.textContent = text || '';
  if (text && kind !== 'diverged' && kind !== 'interrupted') bannerTimer = setTimeout(() => (el.hidden = true), BANNER_TIME);
}

function interruptedText(step) {
  const at = `Interrupted at step ${(step || 0).toLocaleString('en-US')} when the server stopped`;
  return presenter ? `${at} · press play to start again` : at;
}

function setMood(mood) {
  document.body.dataset.mood = mood;
  network.setMood(mood);
}

function showOutput(digits, task) {
  $('output-2d').hidden = digits;
  $('output-digits').hidden = !digits;
  $('show-test').closest('label').hidden = digits;
  heatmap.setTask(task);
  dashboard.setTask(task);
}

/** The download links follow the run on stage (none: links disabled). */
function showExports(run) {
  const csv = $('export-csv');
  const json = $('export-model');
  const modelReady = run && (replayer.active ? hasModel(replayer.run) : !['interrupted', 'failed'].includes(run.state));
  for (const [a, href, name] of [
    [csv, run && exportUrls(run.id).csv, run && `backbeat-${run.id}.csv`],
    [json, modelReady && exportUrls(run.id).model, run && `backbeat-${run.id}-model.json`],
  ]) {
    if (href) {
      a.href = href;
      a.download = name;
    } else a.removeAttribute('href');
  }
}

function inputLabels(features) {
  return features.length <= 12 ? features.map((f) => FEATURE_LABELS[f] || f) : [];
}

function outputLabels(nClasses) {
  return nClasses > 2 ? Array.from({ length: nClasses }, (_, i) => String(i)) : ['ŷ'];
}

/** Whatever is on stage leaves it: a presenter's live run stops; a viewer just stops watching. */
function leaveStage() {
  if (transport.live && presenter) transport.reset();
  else {
    transport.detach();
    clearRun();
  }
}

/** Replay a stored run exactly as it trained, at the transport's tempo. */
function replay(run) {
  audio.unlock();
  leaveStage();
  transport.setEnabled(presenter, true);
  replayer.begin(run);
  announce(`Replaying the ${run.config.dataset} run`);
}

/** The replayer asks for the stream from `start`; the charts first get the steps before it. */
async function replayFrom(run, start, stepsPerSecond) {
  const seek = ++view.seek;
  const past = start > 0 ? await pastSteps(run, start) : null;
  if (seek !== view.seek || replayer.run !== run) return; // a newer seek won
  watch(run.id, { replay: true, start, stepsPerSecond, past });
}

async function pastSteps(run, start) {
  try {
    const metrics = await api.metrics(run.id, Math.max(1, Math.ceil(run.step / PAST_POINTS)));
    return frameSteps(metrics).filter((s) => s.step < start);
  } catch {
    return null; // the charts start at the scrubbed step instead
  }
}

function primePast(steps) {
  dashboard.addSteps(steps);
  audio.primeHistory({ grad_norm: steps.map((s) => s.grads), crescendo: steps.map((s) => s.crescendo) }, false);
}

/** Watch a live run (late join); any replay on stage gives way. */
function joinRun(runId) {
  if (replayer.active) transport.reset();
  return watch(runId);
}

/** The form changed: a live run ends (its settings no longer match) and the preview follows. */
function configChanged() {
  if (transport.runId) transport.reset();
  else clearRun();
}

function clearRun() {
  closeSocket();
  view.run = null;
  view.past = null;
  model.stop();
  if (replayer.active) {
    replayer.close();
    form.loadHash(); // the replayed run's settings give way to the page's own
    transport.setEnabled(presenter);
  }
  const c = form.value();
  const arch = form.architecture();
  audio.resetRun(arch.sizes.length - 1);
  dashboard.reset(arch.sizes.length - 1);
  heatmap.clearField();
  gallery.reset();
  confusion.reset();
  network.clearPulses();
  network.setArchitecture(arch.sizes, inputLabels(arch.inputs), outputLabels(form.dataset().n_classes));
  network.setWeights(null);
  setMood('idle');
  banner(null, '');
  showExports(null);
  if (!transport.runId) transport.setState('idle'); // e.g. a replay that was showing
  view.step = 0;
  view.epoch = 0;
  $('train-loss').textContent = '–';
  $('test-loss').textContent = '–';
  const digits = form.isDigits();
  showOutput(digits, form.dataset().task);
  if (!digits) heatmap.setPoints(previewPoints(c.dataset, { n: Math.min(c.n_samples, PREVIEW_MAX_POINTS), noise: c.noise, seed: c.seed }), null);
}

/** Read the presenter link's token once, hide it from the address bar, and ask who we are. */
async function presenterSession() {
  const fromLink = query.get('token');
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    query.delete('token');
    const rest = query.toString();
    history.replaceState(null, '', `${location.pathname}${rest ? `?${rest}` : ''}${location.hash}`);
  }
  setToken(sessionStorage.getItem(TOKEN_KEY));
  if (document.body.dataset.role !== 'viewer' || !getToken()) return document.body.dataset.role !== 'viewer';
  try {
    const session = await api.session();
    document.body.dataset.role = session.role;
    return session.role === 'presenter';
  } catch {
    return false;
  }
}

/** Join the newest live run when nothing live is on stage (viewers keep doing this; presenters on load). */
async function followLiveRun() {
  const runs = await api.runs();
  if (transport.live || replayer.active) return;
  const live = runs.find((r) => LIVE_STATES.includes(r.state));
  if (live && (!view.run || view.run.id !== live.id)) joinRun(live.id);
}

/** Every few seconds: viewers look for the live run; when no socket speaks for the link, ask the server. */
async function poll() {
  const socketSpeaks = socket && !socket.finished;
  try {
    if (!presenter) await followLiveRun();
    else if (!socketSpeaks) await api.health();
    if (!socketSpeaks) connection.http(true);
  } catch {
    if (!socketSpeaks) connection.http(false);
  }
}

/** Presenter mode swaps the theme and type sizes: canvases re-read them. */
function presenterChanged(on) {
  themeChanged();
  network.restyle();
  dashboard.restyle();
  heatmap.restyle();
  announce(on ? 'Presenter mode on. Press Escape or P to leave.' : 'Presenter mode off');
}

function announce(text) {
  $('announcer').textContent = text;
}

function toggleHelp() {
  const help = $('help');
  if (help.open) help.close();
  else if (!document.querySelector('dialog[open]')) help.showModal();
}

function draw() {
  const now = audio.now();
  network.addNotes(audio.takeNotes(now));
  network.draw(now);
  heatmap.draw();
  gallery.draw();
  confusion.draw();
  dashboard.draw();
  transport.setCounters(view.step, view.epoch);
  soundGate.update();
  requestAnimationFrame(draw);
}

// Any first touch or key enables sound (browsers only allow audio after a gesture).
for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, () => audio.unlock(), { once: true });
$('show-test').checked = readHash().get('test') === '1';
heatmap.setShowTest($('show-test').checked);
$('loss-log').checked = readHash().get('log') !== '0';
dashboard.setLog($('loss-log').checked);
$('show-test').addEventListener('change', (e) => {
  heatmap.setShowTest(e.target.checked);
  updateHash({ test: e.target.checked ? 1 : null });
});
$('loss-log').addEventListener('change', (e) => {
  dashboard.setLog(e.target.checked);
  updateHash({ log: e.target.checked ? null : 0 });
});
$('open-history').addEventListener('click', () => runHistory.open());
$('open-help').addEventListener('click', toggleHelp);
renderHelp($('help-keys'));
bindKeys({
  play: () => transport.play(),
  step: () => transport.step(),
  reset: () => transport.reset(),
  mute: () => transport.toggleMute(),
  faster: () => transport.nudgeTempo(1),
  slower: () => transport.nudgeTempo(-1),
  presenter: () => stageMode.toggle(),
  history: () => runHistory.open(),
  help: toggleHelp,
  escape: () => stageMode.leave(),
});
window.addEventListener('hashchange', () => {
  transport.loadHash();
  if (form.loadHash()) configChanged();
});
form.setEnabled(presenter);
transport.setEnabled(presenter);
clearRun();
const runParam = query.get('run');
if (runParam && query.get('replay') === '1') {
  api.run(runParam).then(replay, () => transport.showError('That run no longer exists.'));
} else if (runParam) {
  joinRun(runParam);
} else {
  followLiveRun().catch(() => {}); // a presenter reloading mid-talk finds the run still playing
}
poll();
setInterval(poll, POLL);
requestAnimationFrame(draw);
