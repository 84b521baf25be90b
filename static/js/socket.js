// One websocket to a run: parse frames, dispatch typed messages, spot seq gaps, reconnect with backoff.

const RECONNECT_MIN = 0.5; // s, first retry delay
const RECONNECT_MAX = 5; // s, longest retry delay: a restarted server is found again within seconds
const CLOSE_FORBIDDEN_ORIGIN = 4003; // cross-site handshake refused — retrying cannot help
const CLOSE_UNKNOWN_RUN = 4004; // no such run — retrying cannot help

export class RunSocket {
  /**
   * handlers: {hello, frame, eval, state, chime, alarm, overfit, end, gap(missing), connection(status)}.
   * options: {replay: bool, stepsPerSecond: number|null, start: step a replay begins at, token: string|null}.
   */
  constructor(runId, handlers, options = {}) {
    this.runId = runId;
    this.handlers = handlers;
    this.options = options;
    this.ws = null;
    this.lastSeq = null;
    this.attempts = 0;
    this.timer = null;
    this.finished = false; // after `end` or close(): do not reconnect
    this.lastStep = null; // a replay that reconnects resumes after the last step it received
  }

  /** True while the socket is open and has been greeted. */
  get connected() {
    return this.greeted && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const params = new URLSearchParams();
    if (this.options.token) params.set('token', this.options.token);
    if (this.options.replay) {
      params.set('replay', '1');
      if (this.options.stepsPerSecond != null) params.set('steps_per_second', String(this.options.stepsPerSecond));
      const start = this.lastStep !== null ? this.lastStep + 1 : this.options.start || 0;
      this.from = start; // the first step this connection replays
      if (start) params.set('start', String(start));
    }
    const query = params.toString();
    return `${scheme}://${location.host}/ws/runs/${encodeURIComponent(this.runId)}${query ? `?${query}` : ''}`;
  }

  open() {
    this.lastSeq = null;
    this.greeted = false;
    this.emit('connection', 'connecting');
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.closed(ws, event);
  }

  /** Deliberate close: no reconnect. */
  close() {
    this.finished = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return; // a malformed frame is dropped rather than killing the page
    }
    if (msg.type === 'ping') {
      this.send({ type: 'pong' }); // the server drops clients that stay silent
      return;
    }
    if (msg.type === 'hello') {
      this.attempts = 0;
      this.greeted = true;
      this.emit('connection', 'open');
    }
    if (msg.type === 'frame' && this.options.replay) {
      if (msg.summary) this.lastStep = msg.last;
      else if (msg.beats && msg.beats.step.length) this.lastStep = msg.beats.step[msg.beats.step.length - 1];
    }
    if (typeof msg.seq === 'number') {
      if (this.lastSeq !== null && msg.seq > this.lastSeq + 1) this.emit('gap', msg.seq - this.lastSeq - 1);
      this.lastSeq = msg.seq;
    }
    if (msg.type === 'end') this.finished = true;
    this.emit(msg.type, msg);
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.finished) return;
    if (event.code === CLOSE_UNKNOWN_RUN || event.code === CLOSE_FORBIDDEN_ORIGIN) {
      this.finished = true;
      this.emit('connection', event.code === CLOSE_UNKNOWN_RUN ? 'unknown-run' : 'refused');
      return;
    }
    const delay = Math.min(RECONNECT_MAX, RECONNECT_MIN * 2 ** this.attempts) * (0.75 + Math.random() * 0.5);
    this.attempts += 1;
    this.emit('connection', 'reconnecting');
    this.timer = setTimeout(() => this.open(), delay * 1000);
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  emit(type, payload) {
    const handler = this.handlers[type];
    if (handler) handler(payload);
  }
}

/** A frame's columnar arrays as one object per step; an audience summary as one step standing for many. */
export function frameSteps(frame) {
  if (frame.summary) return [summaryStep(frame)];
  const b = frame.beats;
  const grads = (frame.echoes && frame.echoes.grad_norm) || [];
  const crescendo = frame.crescendo || [];
  return b.step.map((step, i) => ({
    step,
    t: b.t[i],
    epoch: b.epoch[i],
    loss: b.loss[i],
    accuracy: b.accuracy[i],
    entropy: b.entropy[i],
    crescendo: crescendo[i],
    grads: grads[i] || null,
  }));
}

/** Each column of an audience summary holds its [mean, min, max, last] (app/live/audience.py). */
const MEAN = 0;
const MIN = 1;
const MAX = 2;
const LAST = 3;

/** `count` steps as one: their means, the last step's number, time, epoch and volume, and their range. */
function summaryStep(frame) {
  const s = frame.summary;
  const range = (k) => ({ loss: s.loss[k], accuracy: s.accuracy[k], entropy: s.entropy[k], grads: s.grad_norm[k] });
  return {
    step: frame.last,
    t: s.t[LAST],
    epoch: s.epoch[LAST],
    loss: s.loss[MEAN],
    accuracy: s.accuracy[MEAN],
    entropy: s.entropy[MEAN],
    crescendo: s.crescendo[LAST],
    grads: s.grad_norm[MEAN],
    count: frame.count,
    lo: range(MIN),
    hi: range(MAX),
  };
}

/** A hello's downsampled history as one object per step. */
export function historySteps(h) {
  const at = (key, i) => (h[key] ? h[key][i] : null);
  return (h.step || []).map((step, i) => ({
    step,
    loss: at('loss', i),
    accuracy: at('accuracy', i),
    entropy: at('entropy', i),
    crescendo: at('crescendo', i),
    grads: at('grad_norm', i),
  }));
}
