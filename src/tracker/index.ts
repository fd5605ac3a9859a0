export { TrackerServer, type TrackerOptions } from './server.js';
export { ZoneMap, localityTier, type Location, type ZoneEntry } from './locality.js';
export { MemoryStore, type MemoryStoreOptions } from './memory-store.js';
export { RedisStore, type RedisStoreOptions } from './redis-store.js';
export { TrackerMetrics } from './metrics.js';
export { RateLimiter, sourceKey, type RateLimitOptions } from './rate-limit.js';
export { parseQuery } from './http.js';
export {
  StoreUnavailableError, StoreFullError,
  type SwarmStore, type AnnounceRequest, type AnnounceResult, type AnnounceEvent, type ScrapeEntry, type SelectedPeer, type StoreStats,
} from './swarm-store.js';
export { runTrackerCommand, type TrackerCommandOptions } from './cli.js';
