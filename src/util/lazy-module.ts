import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * A CommonJS dependency loaded on first use. The library's entry point exports the tracker and the fleet controller
 * beside the engine, and a static import of their dependencies would load ioredis, prom-client and pino into every
 * process that embeds the engine (~18 MiB of heap, measured): a downloader never uses them.
 */
export function lazyModule<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(name) as T);
}
