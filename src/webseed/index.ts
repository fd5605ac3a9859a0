export { WebSeed, webSeedSegments, type WebSeedOptions, type WebSeedStats, type WebSeedSegment } from './webseed.js';
export { WebSeedError, type WebSeedFailure } from './errors.js';
export { webSeedUrlFor, isWebSeedUrl, encodePathSegment } from './url.js';
