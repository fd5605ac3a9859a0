export { Dht, PUBLIC_ROUTERS } from './dht.js';
export type { DhtOptions, DhtStats, LookupOptions, LookupResult } from './dht.js';
export { DhtPeerSource } from './peer-source.js';
export { RoutingTable } from './routing-table.js';
export type { DhtNode } from './routing-table.js';
export { PeerStore } from './peer-store.js';
export { TokenManager } from './tokens.js';
export { decodeKrpc, KrpcDecodeError } from './krpc.js';
