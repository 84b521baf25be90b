// How a run is named in the sound dialog's menus.
import { formatCount } from '../format.js';

/** "spiral · sgd 0.03 · finished · 1,200 steps" */
export function runLabel(r) {
  const c = r.config || {};
  return `${c.dataset ?? '?'} · ${c.optimizer ?? ''} ${c.learning_rate ?? ''} · ${r.state} · ${formatCount(r.step ?? 0)} steps`;
}
