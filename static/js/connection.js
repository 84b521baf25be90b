// The link to the server, shown calmly: "Connected", or "Reconnecting…" while a restart or a Wi-Fi blip lasts.

const LABELS = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…' };

export class ConnectionStatus {
  constructor(el) {
    this.el = el;
    this.text = el.querySelector('.connection-text');
    this.state = null;
    this.set('connecting');
  }

  /** connecting | connected | reconnecting; the page dims a little while the link is down. */
  set(state) {
    if (state === this.state || !LABELS[state]) return;
    this.state = state;
    this.el.dataset.state = state;
    this.text.textContent = LABELS[state];
    document.body.dataset.connection = state;
  }

  /** A websocket's status (from RunSocket's `connection` handler). */
  socket(status) {
    if (status === 'open') this.set('connected');
    else if (status === 'reconnecting') this.set('reconnecting');
  }

  /** An HTTP check came back (ok) or could not reach the server. */
  http(ok) {
    this.set(ok ? 'connected' : 'reconnecting');
  }
}
