// Run states as the server defines them (app/live/states.py), from the schema the page carries.
// Outside a page (node:test importing a module that imports this one) there are none.
const carried = globalThis.document?.body?.dataset.schema;
const schema = carried ? JSON.parse(carried) : { states: [] };

/** Names of the states in which a run still trains (or is about to). */
export const LIVE_STATES = new Set(schema.states.filter((s) => s.live).map((s) => s.name));

/** Label of each run state, e.g. { running: 'Running', ... }. */
export const STATE_LABELS = Object.fromEntries(schema.states.map((s) => [s.name, s.label]));
