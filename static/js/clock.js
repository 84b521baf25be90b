// Maps server step times onto the local audio clock: an offset learnt from arrivals plus a jitter buffer.

export const JITTER_BUFFER = 0.15; // s, every step plays this long after its best-case arrival
const DRIFT_RATE = 0.02; // per arrival: how fast the offset creeps up when latency grows for good

export class ServerClock {
  constructor() {
    this.offset = null; // local time − server time, at the fastest arrival seen
  }

  /** Record that the step stamped `serverTime` arrived at local time `localNow`. */
  observe(serverTime, localNow) {
    const sample = localNow - serverTime;
    if (this.offset === null || sample < this.offset) this.offset = sample;
    else this.offset += (sample - this.offset) * DRIFT_RATE;
  }

  /** Local (audio) time at which a step stamped `serverTime` should sound. */
  toLocal(serverTime) {
    return serverTime + (this.offset ?? 0) + JITTER_BUFFER;
  }

  reset() {
    this.offset = null;
  }
}
