// The run's weights for the diagram: fetched a few times a second while training, once when it stops.
import { api } from './api.js';

const POLL_INTERVAL = 250; // ms between fetches while the run trains (≤ 4 a second)

export class ModelWatcher {
  constructor(onModel) {
    this.onModel = onModel;
    this.runId = null;
    this.running = false;
    this.inFlight = false;
    this.again = false;
    this.timer = null;
  }

  watch(runId) {
    this.runId = runId;
    this.refresh();
  }

  stop() {
    this.runId = null;
    this.running = false;
    clearTimeout(this.timer);
  }

  /** Poll while running; one last fetch when it pauses or ends, so the picture is current. */
  setRunning(running) {
    const was = this.running;
    this.running = running;
    if (running && !was) this.schedule();
    if (!running) this.refresh();
  }

  schedule() {
    clearTimeout(this.timer);
    if (!this.running || !this.runId) return;
    this.timer = setTimeout(async () => {
      if (document.visibilityState === 'visible') await this.refresh();
      this.schedule();
    }, POLL_INTERVAL);
  }

  async refresh() {
    const id = this.runId;
    if (!id) return;
    if (this.inFlight) {
      this.again = true; // the answer in flight may predate the pause: ask once more after it
      return;
    }
    this.inFlight = true;
    try {
      const model = await api.model(id);
      if (id === this.runId) this.onModel(model);
    } catch {
      // a missed poll is harmless: the next one follows
    } finally {
      this.inFlight = false;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    }
  }
}
