// Past runs from the server's history: replay one with sound and pictures, or download its metrics and model.
import { api, exportUrls } from './api.js';

const LISTED_RUNS = 50;
const LIVE_STATES = new Set(['starting', 'running', 'paused']);

const $ = (id) => document.getElementById(id);

/** "2–8–8–1": units per layer, input to output. */
export function architecture(layers) {
  return (layers || []).join('–');
}

/** A run's model can be downloaded while it trains and once it ended cleanly (a crash leaves none). */
export function hasModel(run) {
  return LIVE_STATES.has(run.state) || Boolean(run.summary && run.summary.state);
}

export class RunHistory {
  /** onReplay(run) replays a stored run; onWatch(run) joins a live one. */
  constructor({ onReplay, onWatch }) {
    this.dialog = $('history');
    this.rows = $('history-rows');
    this.empty = $('history-empty');
    this.runs = [];
    this.rows.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-run]');
      const run = button && this.runs.find((r) => r.id === button.dataset.run);
      if (!run) return;
      this.dialog.close();
      if (button.dataset.action === 'watch') onWatch(run);
      else onReplay(run);
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  async open() {
    if (!this.dialog.open) this.dialog.showModal();
    await this.refresh();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  /** Reload the list (on open, and after a run ends so it appears). */
  async refresh() {
    try {
      this.runs = (await api.runs()).filter((r) => r.step > 0).slice(0, LISTED_RUNS);
    } catch {
      return; // the server is away: keep what is shown
    }
    this.empty.hidden = this.runs.length > 0;
    this.rows.replaceChildren(...this.runs.map((r) => this.row(r)));
  }

  row(r) {
    const tr = document.createElement('tr');
    tr.dataset.testid = `history-${r.id}`;
    const c = r.config || {};
    const loss = r.summary && (r.summary.train_loss ?? r.summary.test_loss);
    const name = `${started(r.created)} ${c.dataset || ''}`;
    const cells = [
      started(r.created),
      c.dataset || '?',
      architecture(r.layers),
      `${c.optimizer || ''} · ${c.learning_rate ?? ''}`,
      r.step.toLocaleString('en-US'),
      loss === null || loss === undefined ? '–' : formatLoss(loss),
    ].map((text) => cell(text));
    const state = document.createElement('span');
    state.className = 'state-pill';
    state.dataset.state = r.state;
    state.textContent = r.state;
    const live = LIVE_STATES.has(r.state);
    const actions = document.createElement('td');
    actions.className = 'row-actions';
    const play = document.createElement('button');
    play.type = 'button';
    play.className = 'text-button';
    play.dataset.run = r.id;
    play.dataset.action = live ? 'watch' : 'replay';
    play.dataset.testid = `${play.dataset.action}-${r.id}`;
    play.textContent = live ? 'Watch' : 'Replay';
    play.setAttribute('aria-label', `${live ? 'Watch' : 'Replay'} run ${name}`);
    const urls = exportUrls(r.id);
    actions.append(play, link(urls.csv, `backbeat-${r.id}.csv`, 'CSV', `Download metrics of run ${name} (CSV)`, `csv-${r.id}`));
    if (hasModel(r)) actions.append(link(urls.model, `backbeat-${r.id}-model.json`, 'Model', `Download model of run ${name} (JSON)`, `model-${r.id}`));
    tr.append(...cells, cell(state), actions);
    return tr;
  }
}

function cell(content) {
  const td = document.createElement('td');
  td.append(content);
  return td;
}

function link(href, filename, text, label, testid) {
  const a = document.createElement('a');
  a.className = 'text-button';
  a.href = href;
  a.download = filename;
  a.textContent = text;
  a.setAttribute('aria-label', label);
  a.dataset.testid = testid;
  return a;
}

function started(created) {
  const when = new Date(created * 1000);
  const today = when.toDateString() === new Date().toDateString();
  const time = when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return today ? time : `${when.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

export function formatLoss(v) {
  return v === null || v === undefined ? '–' : v < 0.001 ? v.toExponential(2) : v.toFixed(3);
}
