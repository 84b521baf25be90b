// Recent runs from the server's history: pick one and replay it exactly, at the chosen tempo.
import { api } from './api.js';

const LISTED_RUNS = 25;
const REPLAY_TEMPO = 30; // steps/s when the tempo is "max" (the server needs a number to replay at)

export class RunHistory {
  constructor(onReplay) {
    this.onReplay = onReplay;
    this.select = document.getElementById('run-history');
    this.button = document.getElementById('replay');
    this.button.addEventListener('click', () => {
      if (this.select.value) this.onReplay(this.select.value);
    });
    this.refresh();
  }

  static replayTempo(tempo) {
    return tempo ?? REPLAY_TEMPO;
  }

  /** Reload the list (after a run ends, so it appears). */
  async refresh() {
    let runs = [];
    try {
      runs = (await api.runs()).filter((r) => r.step > 0).slice(0, LISTED_RUNS);
    } catch {
      return;
    }
    const chosen = this.select.value;
    this.select.replaceChildren(
      ...runs.map((r) => {
        const o = document.createElement('option');
        o.value = r.id;
        const when = new Date(r.created * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
        o.textContent = `${when} · ${r.config.dataset} · ${r.step.toLocaleString('en-US')} steps · ${r.state}`;
        return o;
      }),
    );
    if (runs.some((r) => r.id === chosen)) this.select.value = chosen;
    this.button.disabled = !runs.length;
    this.select.disabled = !runs.length;
  }
}
