// The link to the server, shown calmly: "Connected", or "Reconnecting…" while a restart or a Wi-Fi blip lasts.

const LABELS = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  limited: 'Connected (broker down)', // --broker: this server serves what it has, and reconnects
};

export class ConnectionStatus {
  constructor(el) {
    this.el = el;
    this.text = el.querySelector('.connection-text');
    this.state = null;
    this.set('connecting');
  }

  /** connecting | connected | reconnecting | limited; the page dims a little while the link is down. */
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

  /** A `notice` message (docs/protocol.md): the server lost or regained its broker. */
  notice(msg) {
    if (msg.broker === 'down' && this.state === 'connected') this.set('limited');
    else if (msg.broker === 'up' && this.state === 'limited') this.set('connected');
    if (msg.detail) this.el.title = msg.broker === 'down' ? msg.detail : '';
  }

  /** An HTTP check came back (ok) or could not reach the server. */
  http(ok) {
    if (!ok) this.set('reconnecting');
    else if (this.state !== 'limited') this.set('connected');
  }
}
