// Wiring only: the form and transport start runs; the socket feeds sound, pictures and charts.
import { api, getToken, setToken } from './api.js';
import { AudioEngine } from './audio.js';
import { Transport } from './controls.js';
import { Dashboard } from './dashboard.js';
import { ConfusionMatrix, DigitGallery } from './digits.js';
import { FEATURE_LABELS, RunForm } from './form.js';
import { RunHistory } from './history.js';
import { DecisionHeatmap } from './heatmap.js';
import { ModelWatcher } from './model.js';
import { NetworkDiagram } from './network.js';
import { RunSocket, frameSteps, historySteps } from './socket.js';
import { previewPoints } from './thumbs.js';

const VIEWER_POLL = 3000; // ms between looks for a live run to watch
const BANNER_TIME = 6000; // ms a converged / overfitting banner stays up (diverged stays)
const PREVIEW_MAX_POINTS = 600;
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
const runHistory = new RunHistory(replay);
const view = { step: 0, epoch: 0, gaps: 0, run: null, listening: null };
let socket = null;

// A small debug handle for tests and the console.
window.backbeat = {
  audio,
  get state() {
    return { runId: transport.runId, runState: transport.state, step: view.step, epoch: view.epoch, gaps: view.gaps, mood: document.body.dataset.mood };
  },
};

/** Listen to a run; resolves once its hello has arrived. */
function watch(runId, options = {}) {
  if (socket) socket.close();
  const listening = new Promise((resolve) => (view.listening = resolve));
  socket = new RunSocket(runId, handlers, { ...options, token: getToken() });
  socket.open();
  if (options.replay) model.stop(); // stored weights are the final ones: wrong for a replay's early steps
  else model.watch(runId);
  return listening;
}

const handlers = {
  hello(msg) {
    const r = msg.run;
    view.run = r;
    form.showConfig(r.config);
    const layers = r.layers.length - 1;
    audio.resetRun(layers);
    audio.primeHistory(msg.history || {}, r.state === 'diverged');
    dashboard.reset(layers);
    dashboard.addSteps(historySteps(msg.history || {}));
    (msg.evals || []).forEach((ev) => dashboard.addEval(ev));
    network.clearPulses();
    network.setArchitecture(r.layers, inputLabels(r.features), outputLabels(r.n_classes));
    showOutput(r.config.dataset === 'digits', r.task);
    if (msg.last_eval) applyEval(msg.last_eval, false);
    const kinds = new Set((msg.events || []).map((e) => e.type));
    if (kinds.has('overfit') && msg.last_eval) audio.overfitStarted(msg.last_eval);
    setMood(kinds.has('alarm') ? 'diverged' : kinds.has('chime') ? 'converged' : kinds.has('overfit') ? 'overfit' : 'idle');
    banner(kinds.has('alarm') ? 'diverged' : null, kinds.has('alarm') ? 'Diverged' : '');
    if (r.state === 'replaying') transport.setState('replaying');
    else transport.adopt(r.id, r.state);
    view.step = r.step;
    view.epoch = r.epoch ?? 0;
    model.setRunning(r.state === 'running');
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
  },
  eval: (ev) => applyEval(ev, true),
  state(msg) {
    transport.setState(msg.state);
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
    runHistory.refresh();
  },
  gap(missing) {
    view.gaps += missing;
  },
  connection(status) {
    if (status === 'reconnecting') transport.showError('Connection lost — reconnecting…');
    if (status === 'open') transport.showError('');
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
  if (text && kind !== 'diverged') bannerTimer = setTimeout(() => (el.hidden = true), BANNER_TIME);
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

function inputLabels(features) {
  return features.length <= 12 ? features.map((f) => FEATURE_LABELS[f] || f) : [];
}

function outputLabels(nClasses) {
  return nClasses > 2 ? Array.from({ length: nClasses }, (_, i) => String(i)) : ['ŷ'];
}

function formatLoss(v) {
  return v === null || v === undefined ? '–' : v < 0.001 ? v.toExponential(2) : v.toFixed(3);
}

/** Replay a stored run exactly as it trained, at the transport's tempo. */
function replay(runId) {
  audio.unlock();
  if (transport.live) transport.reset();
  else clearRun();
  watch(runId, { replay: true, stepsPerSecond: RunHistory.replayTempo(transport.tempo) });
}

/** The form changed: a live run ends (its settings no longer match) and the preview follows. */
function configChanged() {
  if (transport.runId) transport.reset();
  else clearRun();
}

function clearRun() {
  if (socket) socket.close();
  socket = null;
  view.run = null;
  model.stop();
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

/** Viewers follow the presenter: whenever nothing live is on screen, watch the newest live run. */
async function followLiveRun() {
  if (transport.live || transport.state === 'replaying') return;
  try {
    const runs = await api.runs();
    const live = runs.find((r) => LIVE_STATES.includes(r.state));
    if (live && (!view.run || view.run.id !== live.id)) watch(live.id);
  } catch {
    // the next poll tries again
  }
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
  requestAnimationFrame(draw);
}

// Any first touch or key enables sound (browsers only allow audio after a gesture).
for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, () => audio.unlock(), { once: true });
$('show-test').addEventListener('change', (e) => heatmap.setShowTest(e.target.checked));
$('loss-log').addEventListener('change', (e) => dashboard.setLog(e.target.checked));
form.setEnabled(presenter);
transport.setEnabled(presenter);
clearRun();
if (query.get('run')) watch(query.get('run'), { replay: query.get('replay') === '1', stepsPerSecond: transport.tempo });
else if (!presenter) {
  followLiveRun();
  setInterval(followLiveRun, VIEWER_POLL);
}
requestAnimationFrame(draw);
