export { BencodeError, BencodeLimitError, decode, decodePrefix, decodeWithSpans, isDict, toStr } from './decode.js';
export type { BValue, BDict, DecodeOptions } from './decode.js';
export { encode } from './encode.js';
