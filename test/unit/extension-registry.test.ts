import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExtensionRegistry, MAX_EXTENDED_HANDSHAKE_KEYS } from '../../src/connection/registry.js';
import type { Extension, ExtensionConnection } from '../../src/connection/extension.js';

/** A connection that records what the registry asks of it. */
function conn(): ExtensionConnection & { closedWith: string | undefined } {
  return {
    address: '127.0.0.1:1', host: '127.0.0.1', listenPort: 1, outbound: true, remoteHandshake: undefined, closedWith: undefined,
    supports: () => true, sendExtended: () => true,
    close(reason: string) { this.closedWith = reason; },
  };
}

function recorder(name: string, fields?: Record<string, unknown>): Extension & { messages: string[]; handshakes: number; closes: number } {
  const ext = {
    name, messages: [] as string[], handshakes: 0, closes: 0,
    onMessage(_c: ExtensionConnection, payload: Buffer) { ext.messages.push(payload.toString()); },
    onHandshake() { ext.handshakes++; },
    onClose() { ext.closes++; },
    ...(fields ? { handshakeFields: () => fields } : {}),
  };
  return ext;
}

test('local ids follow registration order and the handshake carries every extension and its fields', () => {
  const r = new ExtensionRegistry();
  const a = recorder('ut_metadata', { metadata_size: 1234 });
  const b = recorder('ut_pex');
  r.register(a);
  r.register(b);
  assert.deepEqual(r.names, ['ut_metadata', 'ut_pex']);
  const hs = r.handshake();
  assert.deepEqual(hs['m'], { ut_metadata: 1, ut_pex: 2 });
  assert.equal(hs['metadata_size'], 1234);
  assert.equal(r.get('ut_pex'), b);
});

test('messages reach the extension registered under the local id; unknown ids are ignored', () => {
  const r = new ExtensionRegistry();
  const a = recorder('a');
  const b = recorder('b');
  r.register(a);
  r.register(b);
  const c = conn();
  r.dispatch(c, 2, Buffer.from('to b'));
  r.dispatch(c, 1, Buffer.from('to a'));
  r.dispatch(c, 3, Buffer.from('nobody'));
  r.dispatch(c, 0, Buffer.from('handshake id is not ours to dispatch'));
  assert.deepEqual(a.messages, ['to a']);
  assert.deepEqual(b.messages, ['to b']);
  assert.equal(c.closedWith, undefined);
});

test('handshakes and closes reach every extension; an oversized handshake closes the connection instead', () => {
  const r = new ExtensionRegistry();
  const a = recorder('a');
  r.register(a);
  const c = conn();
  r.handshakeReceived(c, { m: { a: 1 } });
  r.closed(c);
  assert.equal(a.handshakes, 1);
  assert.equal(a.closes, 1);
  const big: Record<string, unknown> = {};
  for (let i = 0; i <= MAX_EXTENDED_HANDSHAKE_KEYS; i++) big[`k${i}`] = i;
  const d = conn();
  r.handshakeReceived(d, big);
  assert.match(d.closedWith ?? '', /more than 256 keys/);
  assert.equal(a.handshakes, 1, 'the extension never saw the oversized handshake');
});

test('a name can be registered once', () => {
  const r = new ExtensionRegistry();
  r.register(recorder('x'));
  assert.throws(() => r.register(recorder('x')), /already registered/);
});
