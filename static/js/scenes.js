// Prepared scenes: one link each (so each is also a bookmark), and the caption presenter mode shows for it.
import { api } from './api.js';
import { readHash } from './hash.js';
import { $ } from './dom.js';

const LIST_KEYS = new Set(['features', 'hidden']);

/** The address of a scene: its whole config, its tempo and its name in the hash. */
export function sceneHash(scene) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(scene.config)) {
    if (key === 'steps_per_second' || key === 'start_paused') continue;
    if (value === null || (typeof value === 'object' && !Array.isArray(value))) continue; // e.g. table: set by the server
    params.set(key, LIST_KEYS.has(key) ? value.join(',') : String(value));
  }
  params.set('tempo', scene.config.steps_per_second ?? 'max');
  params.set('scene', scene.name);
  return `#${params.toString().replace(/%2C/g, ',').replace(/%28/g, '(').replace(/%29/g, ')')}`;
}

export class ScenesMenu {
  constructor() {
    this.scenes = [];
  }

  async load() {
    this.scenes = await api.scenes().catch(() => []);
    const list = $('scene-list');
    list.replaceChildren(
      ...this.scenes.map((s) => {
        const a = document.createElement('a');
        a.href = sceneHash(s);
        a.className = 'scene-link';
        a.dataset.testid = `scene-${s.name}`;
        a.title = s.caption;
        a.textContent = s.title;
        a.addEventListener('click', () => $('scenes-menu').removeAttribute('open'));
        return a;
      }),
    );
  }

  /** The scene the address names, or null. */
  current() {
    const name = readHash().get('scene');
    return this.scenes.find((s) => s.name === name) || null;
  }
}
