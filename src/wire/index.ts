export * from './types.js';
export * from './encode.js';
export * from './handshake.js';
export * from './parser.js';
export * from './peer-wire.js';
export * from './allowed-fast.js';
