// Keyboard shortcuts for the stage: one table drives both the key handler and the help overlay.

export const SHORTCUTS = [
  { keys: ['Space'], action: 'play', does: 'Play / pause (starts a run from the settings when none is live)' },
  { keys: ['S', '→'], action: 'step', does: 'One training step (pauses a running run)' },
  { keys: ['R'], action: 'reset', does: 'Reset: stop the run or the replay (runs stay in the history)' },
  { keys: ['M'], action: 'mute', does: 'Mute / unmute' },
  { keys: ['↑', '↓'], action: 'tempo', does: 'Tempo: faster / slower' },
  { keys: ['P'], action: 'presenter', does: 'Presenter mode: full screen, large type, high contrast' },
  { keys: ['H'], action: 'history', does: 'Run history: replay or download a past run' },
  { keys: ['?'], action: 'help', does: 'This list of shortcuts' },
  { keys: ['Esc'], action: 'escape', does: 'Close this list, leave presenter mode' },
];

const ACTIONS = {
  ' ': 'play',
  s: 'step',
  ArrowRight: 'step',
  r: 'reset',
  m: 'mute',
  ArrowUp: 'faster',
  ArrowDown: 'slower',
  p: 'presenter',
  h: 'history',
  '?': 'help',
  Escape: 'escape',
};
// Keys a focused control already answers: the shortcut steps aside.
const NATIVE = {
  ' ': 'button, a[href], input[type="checkbox"], summary',
  ArrowRight: 'input[type="range"], [role="radio"]',
  ArrowUp: 'input[type="range"], [role="radio"]',
  ArrowDown: 'input[type="range"], [role="radio"]',
};
const TYPING =
  'select, textarea, [contenteditable=""], [contenteditable="true"], input:not([type="range"], [type="checkbox"], [type="radio"], [type="button"])';

/** The action a key press asks for, or null when the key belongs to what has focus. */
export function shortcutFor(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return null;
  const key = event.key.length === 1 && event.key !== ' ' ? event.key.toLowerCase() : event.key;
  const action = ACTIONS[key];
  if (!action) return null;
  const target = event.target instanceof Element ? event.target : null;
  if (target && target.closest(TYPING)) return null; // typing in a field
  if (target && NATIVE[key] && target.closest(NATIVE[key])) return null;
  const dialog = document.querySelector('dialog[open]');
  if (dialog && action !== 'help') return null; // a dialog has the keys (Esc closes it natively)
  return action;
}

/** Route shortcuts to `actions` ({play, step, …}: functions); the help dialog lists SHORTCUTS. */
export function bindKeys(actions) {
  document.addEventListener('keydown', (event) => {
    const action = shortcutFor(event);
    if (!action || !actions[action]) return;
    if (action !== 'escape') event.preventDefault();
    actions[action]();
  });
}

/** Mouse clicks on these buttons leave focus where it was, so Space still means play / pause afterwards. */
export function keepKeysOnStage(...containers) {
  for (const el of containers) {
    el.addEventListener('mousedown', (event) => {
      if (event.target instanceof Element && event.target.closest('button')) event.preventDefault();
    });
  }
}

/** Fill the help overlay's table from SHORTCUTS. */
export function renderHelp(tbody) {
  tbody.replaceChildren(
    ...SHORTCUTS.map(({ keys, does }) => {
      const row = document.createElement('tr');
      const keyCell = document.createElement('th');
      keyCell.scope = 'row';
      keys.forEach((k, i) => {
        if (i) keyCell.append(' ');
        const kbd = document.createElement('kbd');
        kbd.textContent = k;
        keyCell.append(kbd);
      });
      const doesCell = document.createElement('td');
      doesCell.textContent = does;
      row.append(keyCell, doesCell);
      return row;
    }),
  );
}
