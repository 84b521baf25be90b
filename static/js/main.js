// Wiring only: the form and transport start runs; the socket feeds the stage; viewers follow the live run.
import { api, exportUrls, getToken } from './api.js';
import { AudioEngine } from './audio.js';
import { themeChanged } from './canvas.js';
import { ConnectionStatus } from './connection.js';
import { Transport } from './controls.js';
import { RunForm } from './form.js';
import { readHash, updateHash } from './hash.js';
import { RunHistory, hasModel } from './history.js';
import { bindKeys, keepKeysOnStage, renderHelp } from './keys.js';
import { ModelWatcher } from './model.js';
import { PresenterMode } from './presenter.js';
import { Replayer } from './replay.js';
import { presenterSession } from './session.js';
import { RunSocket, frameSteps } from './socket.js';
import { SoundGate } from './soundgate.js';
import { Stage } from './stage.js';

const POLL = 3000; // ms between looks at the server: viewers follow the live run, everyone sees the link state
const COUNTER_INTERVAL = 100; // ms: at full speed the counters change ≤ 10 times a second (each change costs a layout)
const LIVE_STATES = ['starting', 'running', 'paused'];
const NO_WEIGHTS = ['interrupted', 'failed']; // cut off by a crash: no final model was saved

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const presenter = await presenterSession();

const audio = new AudioEngine();
const stage = new Stage(audio, () => form.layers.align((i) => stage.network.columnX(i)));
const model = new ModelWatcher((m) => stage.network.setWeights(m));
const form = new RunForm(await api.datasets().catch(() => null), configChanged);
const transport = new Transport({ form, audio, onStart: (id) => watch(id), onReset: clearRun });
const replayer = new Replayer({
  play: (run, options) => watch(run.id, { replay: true, ...options }),
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
const view = { step: 0, epoch: 0, gaps: 0, run: null, listening: null, past: null };
let socket = null;

// A small debug handle for tests and the console.
window.backbeat = {
  audio,
  get state() {
    return {
      runId: transport.runId, runState: transport.state, step: view.step, epoch: view.epoch, gaps: view.gaps,
      mood: document.body.dataset.mood, connection: connection.state, motion: stage.network.motion,
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
  model.stop(); // the hello says whether there are weights to fetch
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
    stage.hello(msg, view.past, interruptedText);
    view.past = null;
    if (replaying) transport.setState('replaying');
    else {
      transport.adopt(r.id, r.state);
      transport.showRunTempo(r.steps_per_second);
    }
    view.step = replaying ? Math.max(0, (socket.from || 0) - 1) : r.step;
    view.epoch = r.epoch ?? 0;
    // Weights: polled while training, fetched once when it stops; none for a replay's early steps.
    if (replaying || NO_WEIGHTS.includes(r.state)) model.stop();
    else {
      model.watch(r.id);
      model.setRunning(r.state === 'running');
    }
    showExports(r);
    showCaption(r.config, r.layers);
    if (view.listening) view.listening();
    view.listening = null;
  },
  frame(msg) {
    const steps = frameSteps(msg);
    if (!steps.length) return;
    stage.addSteps(steps);
    const last = steps[steps.length - 1];
    view.step = last.step;
    view.epoch = last.epoch;
    replayer.progress(last.step);
  },
  eval: (ev) => stage.applyEval(ev, true),
  state(msg) {
    transport.setState(msg.state);
    if (msg.steps_per_second !== undefined) transport.followRunTempo(msg.steps_per_second);
    model.setRunning(msg.state === 'running');
  },
  chime: (msg) => stage.chime(msg),
  alarm: (msg) => stage.alarm(msg),
  overfit: (msg) => stage.overfit(msg),
  end(msg) {
    transport.setState(msg.state);
    model.setRunning(false);
    if (replayer.active) replayer.finished();
    else if (view.run) {
      view.run = { ...view.run, state: msg.state };
      showExports(view.run);
      if (msg.state === 'interrupted') stage.banner('interrupted', interruptedText(msg.step));
    }
    if (runHistory.isOpen) runHistory.refresh();
  },
  gap(missing) {
    view.gaps += missing;
  },
  connection(status) {
    connection.socket(status);
    if (status === 'reconnecting') model.stop(); // no polling a server that is away
    if (status === 'unknown-run') transport.showError('That run no longer exists.');
    if (status === 'refused') transport.showError('The server refused this page’s connection.');
  },
};

function interruptedText(step) {
  const at = `Interrupted at step ${(step || 0).toLocaleString('en-US')}: the server stopped.`;
  return presenter ? `${at} Press play to start again.` : at;
}

/** The download links follow the run on stage (none: links disabled). */
function showExports(run) {
  const modelReady = run && (replayer.active ? hasModel(replayer.run) : !NO_WEIGHTS.includes(run.state));
  const urls = run && exportUrls(run.id);
  for (const [a, href, name] of [
    [$('export-csv'), urls && urls.csv, run && `backbeat-${run.id}.csv`],
    [$('export-model'), modelReady && urls.model, run && `backbeat-${run.id}-model.json`],
  ]) {
    if (href) {
      a.href = href;
      a.download = name;
    } else a.removeAttribute('href');
  }
}

/** What is on stage, in one line for the room (shown in presenter mode). */
function showCaption(config, layers) {
  $('run-caption').textContent = `${config.dataset} · ${layers.join('–')} · ${config.optimizer} ${config.learning_rate}`;
}

/** Whatever is on stage leaves it: a presenter's live run stops; a viewer just stops watching. */
function leaveStage() {
  if (transport.live && presenter) transport.reset();
  else {
    transport.detach();
    clearRun();
  }
}

/** Replay a stored run (an entry of GET /api/runs) exactly as it trained, at the transport's tempo. */
function replay(run) {
  audio.unlock();
  leaveStage();
  transport.setEnabled(presenter, true);
  replayer.begin(run);
  announce(`Replaying the ${run.config.dataset} run`);
}

/** Watch a live run (late join); any replay on stage gives way. */
function joinRun(runId) {
  if (replayer.active) transport.reset();
  return watch(runId);
}

/** The form changed: a live run ends (its settings no longer match) and the preview follows. */
function configChanged() {
  updateHash({ tempo: transport.tempo ?? 'max' }); // the bookmark holds the tempo too
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
  stage.clear(form);
  showExports(null);
  showCaption(form.value(), form.architecture().sizes);
  if (!transport.runId) transport.setState('idle'); // e.g. a replay that was showing
  view.step = 0;
  view.epoch = 0;
}

/** Join the newest live run when nothing live is on stage (viewers keep doing this; presenters on load). */
async function followLiveRun() {
  const runs = await api.runs();
  if (transport.live || replayer.active) return;
  const live = runs.find((r) => LIVE_STATES.includes(r.state));
  const watching = socket && !socket.finished ? socket.runId : view.run && view.run.id;
  if (live && live.id !== watching) joinRun(live.id);
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

function presenterChanged(on) {
  themeChanged();
  stage.restyle();
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

let countedAt = -Infinity;
function draw(now) {
  stage.draw();
  if (now - countedAt >= COUNTER_INTERVAL && transport.setCounters(view.step, view.epoch)) countedAt = now;
  soundGate.update();
  requestAnimationFrame(draw);
}

// Any first touch or key enables sound (browsers only allow audio after a gesture).
for (const type of ['pointerdown', 'keydown']) document.addEventListener(type, () => audio.unlock(), { once: true });
$('show-test').checked = readHash().get('test') === '1';
stage.heatmap.setShowTest($('show-test').checked);
$('loss-log').checked = readHash().get('log') !== '0';
stage.dashboard.setLog($('loss-log').checked);
$('show-test').addEventListener('change', (e) => {
  stage.heatmap.setShowTest(e.target.checked);
  updateHash({ test: e.target.checked ? 1 : null });
});
$('loss-log').addEventListener('change', (e) => {
  stage.dashboard.setLog(e.target.checked);
  updateHash({ log: e.target.checked ? null : 0 });
});
$('open-history').addEventListener('click', () => runHistory.open());
$('open-help').addEventListener('click', toggleHelp);
renderHelp($('help-keys'));
keepKeysOnStage(document.querySelector('.topbar'), $('replay-bar'));
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
} else if (presenter) {
  followLiveRun().catch(() => {}); // a presenter reloading mid-talk finds the run still playing
}
poll();
setInterval(poll, POLL);
requestAnimationFrame(draw);
