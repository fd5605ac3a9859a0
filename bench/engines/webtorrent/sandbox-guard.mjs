// Imported first by the WebTorrent runners. WebTorrent's dependencies name public hosts (k-rpc bootstraps its DHT
// from the public routers); the runners turn the DHT off and refuse a client that has one, and this
// guard makes the rule hold whatever an option does upstream: every UDP send and TCP connect to an address outside
// loopback and 198.18.0.0/15 (the benchmark's namespaces) throws before a packet or DNS query leaves.
import dgram from 'node:dgram';
import net from 'node:net';
import { isSandboxAddress } from '../../../dist/src/util/sandbox.js';

function refuse(kind, host) {
  throw new Error(`benchmark sandbox: WebTorrent tried a ${kind} to ${host}, outside loopback and 198.18.0.0/15`);
}

const send = dgram.Socket.prototype.send;
dgram.Socket.prototype.send = function guardedSend(...args) {
  // send(msg[, offset, length], port[, address][, callback]): the address is the string after the port.
  const portAt = args.findIndex((x, i) => i > 0 && typeof x === 'number' && typeof args[i + 1] !== 'number');
  const address = portAt > 0 && typeof args[portAt + 1] === 'string' ? args[portAt + 1] : null;
  // No address: the socket's connected peer, or localhost by Node's default.
  if (address !== null && !isSandboxAddress(address)) refuse('UDP send', address);
  return send.apply(this, args);
};

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(...args) {
  const first = Array.isArray(args[0]) ? args[0][0] : args[0];
  const host = typeof first === 'object' && first !== null ? first.host ?? first.path ?? 'localhost'
    : typeof args[1] === 'string' ? args[1] : 'localhost';
  if (typeof host === 'string' && host !== 'localhost' && !host.startsWith('/') && !isSandboxAddress(host)) refuse('TCP connect', host);
  return connect.apply(this, args);
};
