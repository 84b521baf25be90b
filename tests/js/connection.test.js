// The connection indicator: a server that lost its broker says so, and says when it is back.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConnectionStatus } from '../../static/js/connection.js';

function indicator() {
  globalThis.document = { body: { dataset: {} } };
  const text = { textContent: '' };
  const el = { dataset: {}, title: '', querySelector: () => text };
  return { status: new ConnectionStatus(el), el, text };
}

test('a broker outage shows as a limited connection until the broker is back', () => {
  const { status, el, text } = indicator();
  status.socket('open');
  assert.equal(text.textContent, 'Connected');
  status.notice({ type: 'notice', broker: 'down', detail: 'the broker is unreachable: refused' });
  assert.equal(el.dataset.state, 'limited');
  assert.equal(text.textContent, 'Connected (broker down)');
  assert.equal(el.title, 'the broker is unreachable: refused');
  status.http(true); // the page's own checks still reach this server: still limited
  assert.equal(el.dataset.state, 'limited');
  status.notice({ type: 'notice', broker: 'up', detail: 'the broker is reachable' });
  assert.equal(el.dataset.state, 'connected');
  assert.equal(el.title, '');
});

test('a lost server outranks a lost broker', () => {
  const { status, el } = indicator();
  status.socket('reconnecting');
  status.notice({ type: 'notice', broker: 'down' });
  assert.equal(el.dataset.state, 'reconnecting');
  status.http(false);
  assert.equal(el.dataset.state, 'reconnecting');
  assert.equal(globalThis.document.body.dataset.connection, 'reconnecting');
});
