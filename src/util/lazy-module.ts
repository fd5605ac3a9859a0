import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * A CommonJS dependency loaded on first use. The library's entry point exports the tracker and the fleet controller
 * beside the engine, and static imports of ioredis, prom-client, pino and undici (web seeds) would load them into
 * every process that embeds the engine (~25 MiB, measured), though a downloader usually calls none of them.
 */
export function lazyModule<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(name) as T);
}
