/** A short, seeded run of every fuzz target (test/fuzz/targets.ts); `npm run fuzz` runs them for longer. */
import { test } from 'node:test';
import fc from 'fast-check';
import { TARGETS, caseRunner } from '../fuzz/targets.js';

const SEED = 20261201;
const RUNS: Record<string, number> = { 'tracker-http': 150 };

for (const t of TARGETS) {
  test(`fuzz ${t.name}: ${RUNS[t.name] ?? 400} seeded cases`, { timeout: 15_000 }, async () => {
    await t.setup?.();
    try {
      const run = caseRunner(t);
      await fc.assert(fc.asyncProperty(t.arbitrary, (input) => run(input)), { seed: SEED, numRuns: RUNS[t.name] ?? 400, interruptAfterTimeLimit: 2500 });
    } finally {
      await t.teardown?.();
    }
  });
}
