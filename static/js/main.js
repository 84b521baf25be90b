// Wiring only: the form and transport start runs; the socket feeds the stage; viewers follow the live run.
import { api, exportUrls, getToken } from './api.js';
import { AudioEngine } from './audio.js';
import { themeChanged } from './canvas.js';
import { ConnectionStatus } from './connection.js';
import { Transport, setDefaultTempo } from './controls.js';
import { DrawPad } from './draw.js';
import { RunForm, setDefaults } from './form.js';
import { readHash, updateHash } from './hash.js';
import { RunHistory, hasModel } from './history.js';
import { bindKeys, keepKeysOnStage, renderHelp } from './keys.js';
import { ModelWatcher } from './model.js';
import { PresenterMode } from './presenter.js';
import { Replayer } from './replay.js';
import { ScenesMenu } from './scenes.js';
import { presenterSession } from './session.js';
import { RunSocket, frameSteps } from './socket.js';
import { SoundPanel } from './sound/panel.js';
import { SoundGate } from './soundgate.js';
import { Stage } from './stage.js';
import { UploadPanel } from './upload.js';
import { LIVE_STATES } from './states.js';
import { $ } from './dom.js';
import { formatCount } from './format.js';

const POLL = 3000; // ms between looks at the server: viewers follow the live run, everyone sees the link state
const COUNTER_INTERVAL = 100; // ms: at full speed the counters change ≤ 10 times a second (each change costs a layout)
const NO_WEIGHTS = ['interrupted', 'failed']; // cut off by a crash: no final model was saved

const query = new URLSearchParams(location.search);
const presenter = await presenterSession();

const defaults = await api.defaults(); // one source: the same config as `POST /api/runs {}`
setDefaults(defaults);
setDefaultTempo(defaults.steps_per_second);
const scenes = new ScenesMenu();
const audio = new AudioEngine();
const stage = new Stage(audio, () => form.layers.align((i) => stage.network.columnX(i)));
const model = new ModelWatcher((m) => stage.network.setWeights(m));
const form = new RunForm(await api.datasets().catch(() => null), formChanged);
const transport = new Transport({ form, audio, onStart: (id) => watch(id), onReset: clearRun });
const replayer = new Replayer({
  play: (run, options) => watch(run.id, { replay: true, ...options }),
  halt: () => {
    closeSocket();
    model.setRunning(false); // the paused replay keeps the snapshot of its step
  },
  tempo: () => transport.tempo,
  onState: (state) => transport.setState(state),
  onStop: () => transport.reset(),
});
transport.replay = replayer;
const drawPad = new DrawPad(stage.heatmap, {
  onEdit: drawingChanged,
  onSaved: drawnSaved,
  selected: () => form.dataset(),
});
stage.drawing = () => (drawPad.active ? drawPad.preview() : null);
const upload = new UploadPanel({
  onUploaded: (info) => {
    form.addDataset(info);
    form.set('dataset', info.name);
  },
  onDeleted: (name) => form.removeDataset(name),
});
const runHistory = new RunHistory({ onReplay: replay, onWatch: (run) => joinRun(run.id) });
const connection = new ConnectionStatus($('connection'));
const soundGate = new SoundGate($('enable-sound'), audio);
const stageMode = new PresenterMode($('presenter'), presenterChanged);
const view = { step: 0, epoch: 0, gaps: 0, run: null, listening: null };
let socket = null;
const sound = new SoundPanel({
  audio,
  stage,
  tempo: () => transport.tempo,
  onStage: () => (view.run ? view.run.id : null),
  leave: (compared) => leaveStage(compared),
  back: () => clearRun(),
});

// A small debug handle for tests and the console.
window.backbeat = {
  audio,
  sound,
  model,
  get state() {
    return {
      runId: transport.runId,
      runState: transport.state,
      step: view.step,
      epoch: view.epoch,
      gaps: view.gaps,
      mood: document.body.dataset.mood,
      connection: connection.state,
      motion: stage.network.motion,
      replaying: replayer.active,
      shownRun: view.run && view.run.id,
    };
  },
  /** What the pictures show: the diagram's weights, and the newest step any chart has drawn. */
  get pictures() {
    const charts = stage.dashboard.extent();
    const readouts = Object.fromEntries(
      ['loss', 'accuracy', 'entropy', 'grad'].map((k) => [k, stage.dashboard[k].readout]),
    );
    readouts.heatmap = stage.heatmap.readout;
    readouts.network = stage.network.readout;
    const layout = stage.network.layout && stage.network.layout.columns.map((c) => ({ x: c.x, ys: c.ys }));
    return { weights: stage.network.weights, lastStep: charts.last, ordered: charts.ordered, readouts, layout };
  },
  get drawn() {
    return { active: drawPad.active, task: drawPad.task, points: drawPad.points.map((p) => [...p]) };
  },
};

/** Listen to a run; resolves once its hello has arrived. */
function watch(runId, options = {}) {
  sound.stopCompare({ back: false }); // a run taking the stage ends an A/B comparison
  closeSocket();
  const listening = new Promise((resolve) => (view.listening = resolve));
  socket = new RunSocket(runId, handlers, { ...options, token: getToken() });
  socket.open();
  model.stop(); // the hello says whether there are weights to fetch
  return listening;
}

function closeSocket() {
  if (socket) socket.close();
  socket = null;
  transport.streaming = false;
}

const handlers = {
  hello(msg) {
    const r = msg.run;
    const replaying = r.state === 'replaying';
    view.run = r;
    form.showConfig(r.config);
    stage.hello(msg, interruptedText);
    if (msg.notice) connection.notice(msg.notice); // joined while the server's broker is down
    if (replaying) transport.setState('replaying');
    else {
      transport.adopt(r.id, r.state);
      transport.showRunTempo(r.steps_per_second);
    }
    view.step = replaying ? Math.max(0, (socket.from || 0) - 1) : r.step;
    view.epoch = r.epoch ?? 0;
    // Weights: polled while training, fetched once when it stops; a replay follows the snapshots of its step.
    if (replaying && r.source !== 'external') {
      model.watch(r.id, { at: () => view.step });
      model.setRunning(true);
    } else if (replaying || NO_WEIGHTS.includes(r.state) || r.source === 'external')
      model.stop(); // an outside run's weights stay in its script
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
  change(msg) {
    stage.change(msg);
    if (view.run) view.run = { ...view.run, config: { ...view.run.config, ...msg.changes } };
    if (view.run) showCaption(view.run.config, view.run.layers);
    announce(`Changed at step ${msg.step}: ${describeChanges(msg.changes)}`);
  },
  plateau: (msg) => stage.plateau(msg),
  plateau_end: (msg) => stage.plateauEnd(msg),
  notice: (msg) => connection.notice(msg), // the server lost or regained its broker
  end(msg) {
    transport.setState(msg.state);
    needsRun(null);
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
    transport.streaming = status === 'open'; // an open stream alone says the run's state, in order
    if (status === 'open' || status === 'reconnecting') transport.linkChanged(status === 'open');
    if (status === 'reconnecting') model.stop(); // no polling a server that is away
    if (status === 'unknown-run') transport.showError('That run no longer exists.');
    if (status === 'refused') transport.showError('The server refused this page’s connection.');
  },
};

function interruptedText(step) {
  const at = `Interrupted at step ${formatCount(step || 0)}: the server stopped.`;
  return presenter ? `${at} Press play to start again.` : at;
}

/** The download links follow the run on stage (none: links disabled). */
function showExports(run) {
  const modelReady =
    run && run.source !== 'external' && (replayer.active ? hasModel(replayer.run) : !NO_WEIGHTS.includes(run.state));
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

/** What is on stage, in one line for the room (shown in presenter mode); a scene's lesson leads. */
function showCaption(config, layers) {
  const line = `${config.dataset} · ${layers.join('–')} · ${config.optimizer} ${config.learning_rate}`;
  const scene = scenes.current();
  $('run-caption').textContent = scene ? `${scene.title}: ${scene.caption} (${line})` : line;
}

function describeChanges(changes) {
  return Object.entries(changes)
    .map(([k, v]) => `${k.replace(/_/g, ' ')} ${v}`)
    .join(', ');
}

/**
 * Whatever is on stage leaves it: a presenter's live run stops; a viewer just stops watching.
 * A run in `keep` (one an A/B comparison is about to play) keeps training off stage.
 */
function leaveStage(keep = []) {
  if (transport.live && presenter && !keep.includes(transport.runId)) transport.reset();
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

/** Drawing edits the data: whatever run is on stage gives way to the drawn points. */
function drawingChanged() {
  if (transport.runId) transport.reset();
  else if (replayer.active || view.run) clearRun();
  else stage.clear(form);
}

/** A drawn set is stored: it joins the picker, is selected, and (Train on this) a run starts on it. */
async function drawnSaved(info, train) {
  form.addDataset(info);
  if (form.config.dataset !== info.name) form.set('dataset', info.name);
  if (train) {
    if (transport.runId) await transport.reset();
    clearRun();
    await transport.play();
  }
}

/** The address changed (a bookmark, a scene): its settings take the stage, ending a live run. */
function configChanged() {
  updateHash({ tempo: transport.tempo ?? 'max' }); // the bookmark holds the tempo too
  needsRun(null);
  if (transport.runId) transport.reset();
  else clearRun();
}

/** The user changed one setting: a live run takes it at once if it can, and plays on either way. */
async function formChanged(key) {
  updateHash({ scene: null }); // the settings no longer are the scene's
  if (!(transport.live && presenter)) return configChanged();
  try {
    const answer = await api.control(transport.runId, 'set', { changes: { [key]: form.config[key] } });
    if (view.run) view.run = { ...view.run, config: answer.config };
  } catch (e) {
    if (e.status === 409 && transport.live) needsRun(`${key.replace(/_/g, ' ')} needs a new run.`);
    else transport.fail(e);
  }
}

/** Say that the form holds settings the live run cannot take (null: nothing pending). */
function needsRun(text) {
  $('needs-run').hidden = !text;
  $('needs-run-text').textContent = text || '';
}

async function startNewRun() {
  needsRun(null);
  await transport.reset();
  await transport.play();
}

function clearRun() {
  closeSocket();
  view.run = null;
  model.stop();
  if (replayer.active) {
    replayer.close();
    form.loadHash(); // the replayed run's settings give way to the page's own
    transport.setEnabled(presenter);
  }
  upload.show(form.dataset());
  drawPad.setAvailable(form.is2d());
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
  const live = runs.find((r) => LIVE_STATES.has(r.state));
  const watching = socket && !socket.finished ? socket.runId : view.run && view.run.id;
  if (live && live.id !== watching) joinRun(live.id);
}

/** Every few seconds: viewers look for the live run; when no socket speaks for the link, ask the server. */
async function poll() {
  const socketSpeaks = socket && !socket.finished;
  try {
    if (!presenter) await followLiveRun();
    else if (!socketSpeaks) await api.health();
    if (!socketSpeaks) linkUp(true);
  } catch {
    if (!socketSpeaks) linkUp(false);
  }
}

function linkUp(ok) {
  connection.http(ok);
  transport.linkChanged(ok);
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
$('new-run').addEventListener('click', startNewRun);
await scenes.load();
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
drawPad.setEnabled(presenter);
upload.setEnabled(presenter);
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
document.body.dataset.ready = 'true'; // every handler is bound: tests (and tools) wait for this
