// The run's weights for the diagram: fetched a few times a second while training, once when it stops.
// A replay asks for the snapshot kept at or before the replayed step, so the diagram is the network as it was.
import { api } from './api.js';

const POLL_INTERVAL = 250; // ms between fetches while the run trains or replays (≤ 4 a second)

export class ModelWatcher {
  constructor(onModel) {
    this.onModel = onModel;
    this.runId = null;
    this.at = null; // replaying: () => the step on stage; live: null (the weights now)
    this.asked = null; // the step last asked for in a replay (no new fetch while it stands still)
    this.running = false;
    this.inFlight = false;
    this.again = false;
    this.timer = null;
  }

  /** Follow a run: its weights now, or with `at` (a replay) its snapshots at the step `at()` says. */
  watch(runId, { at = null } = {}) {
    this.runId = runId;
    this.at = at;
    this.asked = null;
    this.refresh();
  }

  stop() {
    this.runId = null;
    this.at = null;
    this.running = false;
    clearTimeout(this.timer);
  }

  /** Poll while running; one last fetch when it pauses or ends, so the picture is current. */
  setRunning(running) {
    const was = this.running;
    this.running = running;
    if (running && !was) this.schedule();
    if (!running) this.refresh();
    if (!running && this.at) this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    // a paused replay keeps watching: its step on stage may still settle (a fetch only when it moved)
    if (!this.runId || (!this.running && !this.at)) return;
    this.timer = setTimeout(async () => {
      if (document.visibilityState === 'visible') await this.refresh();
      this.schedule();
    }, POLL_INTERVAL);
  }

  async refresh() {
    const id = this.runId;
    if (!id) return;
    const step = this.at ? Math.max(0, Math.floor(this.at())) : null;
    if (this.at && step === this.asked) return; // the replay stands still: its snapshot is shown
    if (this.inFlight) {
      this.again = true; // the answer in flight may predate the pause: ask once more after it
      return;
    }
    this.inFlight = true;
    try {
      const model = await api.model(id, step);
      if (id === this.runId) {
        this.asked = step;
        this.onModel(model);
      }
    } catch (e) {
      // live: a missed poll is harmless, the next one follows; a replay without a snapshot this early draws none
      if (id === this.runId && step !== null && e.status === 404) {
        this.asked = step;
        this.onModel(null);
      }
    } finally {
      this.inFlight = false;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    }
  }
}
