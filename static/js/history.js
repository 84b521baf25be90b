// Past runs from the server's history: replay one with sound and pictures, or download its metrics and model.
import { api, exportUrls } from './api.js';
import { LIVE_STATES } from './states.js';
import { $ } from './dom.js';
import { formatCount, formatLoss } from './format.js';

const PAGE_SIZE = 25; // runs a page of the history shows; Older / Newer reach the rest

/** "2–8–8–1": units per layer, input to output. */
export function architecture(layers) {
  return (layers || []).join('–');
}

const CRASHED = new Set(['interrupted', 'failed']); // cut off (kill -9, a crash): no final model was saved

/** A run's model can be downloaded while it trains and once it ended cleanly (a crash leaves none). */
export function hasModel(run) {
  if (CRASHED.has(run.state)) return false;
  if (run.config && run.config.source === 'external') return false; // its weights stay in its script
  return LIVE_STATES.has(run.state) || Boolean(run.summary && run.summary.state);
}

export class RunHistory {
  /** onReplay(run) replays a stored run; onWatch(run) joins a live one. */
  constructor({ onReplay, onWatch }) {
    this.dialog = $('history');
    this.rows = $('history-rows');
    this.empty = $('history-empty');
    this.runs = []; // every stored run that trained a step, newest first
    this.page = 0;
    this.filters = { dataset: $('history-dataset'), state: $('history-state') };
    for (const select of Object.values(this.filters)) {
      select.addEventListener('change', () => {
        this.page = 0;
        this.render();
      });
    }
    $('history-newer').addEventListener('click', () => this.turn(-1));
    $('history-older').addEventListener('click', () => this.turn(1));
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
      this.runs = (await api.runs()).filter((r) => r.step > 0);
    } catch {
      return; // the server is away: keep what is shown
    }
    this.render();
  }

  /** The runs the filters let through, newest first. */
  shown() {
    const dataset = this.filters.dataset.value;
    const state = this.filters.state.value;
    return this.runs.filter(
      (r) => (!dataset || (r.config && r.config.dataset) === dataset) && (!state || r.state === state),
    );
  }

  turn(direction) {
    this.page += direction;
    this.render();
  }

  /** One page of the filtered runs, the filters' choices and where this page sits among them. */
  render() {
    fillFilter(
      this.filters.dataset,
      this.runs.map((r) => r.config && r.config.dataset),
      'All datasets',
    );
    fillFilter(
      this.filters.state,
      this.runs.map((r) => r.state),
      'All states',
    );
    const runs = this.shown();
    const pages = Math.max(1, Math.ceil(runs.length / PAGE_SIZE));
    this.page = Math.min(Math.max(0, this.page), pages - 1);
    const first = this.page * PAGE_SIZE;
    const page = runs.slice(first, first + PAGE_SIZE);
    this.empty.hidden = page.length > 0;
    this.rows.replaceChildren(...page.map((r) => this.row(r)));
    $('history-range').textContent = runs.length
      ? `${first + 1}–${first + page.length} of ${runs.length} run${runs.length === 1 ? '' : 's'}`
      : '';
    $('history-newer').disabled = this.page === 0;
    $('history-older').disabled = this.page >= pages - 1;
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
      formatCount(r.step),
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
    actions.append(
      play,
      link(urls.csv, `backbeat-${r.id}.csv`, 'CSV', `Download metrics of run ${name} (CSV)`, `csv-${r.id}`),
    );
    if (hasModel(r))
      actions.append(
        link(
          urls.model,
          `backbeat-${r.id}-model.json`,
          'Model',
          `Download model of run ${name} (JSON)`,
          `model-${r.id}`,
        ),
      );
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

/** Keep a filter's choice while offering exactly the values the stored runs have. */
function fillFilter(select, values, allLabel) {
  const chosen = select.value;
  const options = [...new Set(values.filter(Boolean))].sort();
  select.replaceChildren(new Option(allLabel, ''), ...options.map((v) => new Option(v, v)));
  select.value = options.includes(chosen) ? chosen : '';
}

/** When a run started, always with its date ("Dec 1, 2026, 21:36"): a history spans days. */
export function started(created) {
  const when = new Date(created * 1000);
  const date = when.toLocaleDateString('en-US', { month: 'short', day: 'numeric', year: 'numeric' });
  const time = when.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
  return `${date}, ${time}`;
}
