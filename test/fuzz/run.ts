// Long fuzz run: node dist/test/fuzz/run.js [--seconds 60] [--seed S] [--target name[,name]]
// Splits the time evenly over the chosen targets, prints each target's case count, and for a failure the
// seed and counterexample path that replay it (fast-check: same seed + path => same case), then exits 1.
import fc from 'fast-check';
import { TARGETS, caseRunner } from './targets.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const seconds = Number(arg('seconds') ?? '60');
const seed = Number(arg('seed') ?? String(Date.now() % 2 ** 31));
const path = arg('path');
const wanted = arg('target')?.split(',');
const targets = wanted ? TARGETS.filter((t) => wanted.includes(t.name)) : TARGETS;
if (targets.length === 0 || !Number.isFinite(seconds) || seconds <= 0 || !Number.isInteger(seed)) {
  console.error(`usage: run.js --seconds N --seed S --target ${TARGETS.map((t) => t.name).join('|')}`);
  process.exit(2);
}

let failed = 0;
console.log(`fuzz: ${targets.length} target(s), ${seconds}s, seed ${seed}`);
for (const t of targets) {
  await t.setup?.();
  const run = caseRunner(t);
  const ms = Math.max(1, Math.floor((seconds * 1000) / targets.length));
  const details = await fc.check(fc.asyncProperty(t.arbitrary, (input) => run(input)), {
    seed, numRuns: path ? 1 : Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: ms, markInterruptAsFailure: false,
    ...(path ? { path } : {}), endOnFailure: false,
  });
  await t.teardown?.();
  if (details.failed) {
    failed++;
    const err = details.errorInstance as Error | undefined;
    console.log(`${t.name.padEnd(20)} FAILED after ${details.numRuns} cases: seed ${details.seed} path ${details.counterexamplePath}`);
    console.log(`  replay: node dist/test/fuzz/run.js --target ${t.name} --seed ${details.seed} --path ${details.counterexamplePath}`);
    console.log(`  input:  ${details.counterexample ? t.show(details.counterexample[0]) : '?'}`);
    console.log(`  error:  ${err?.stack?.split('\n').slice(0, 4).join('\n          ') ?? String(details.errorInstance)}`);
  } else {
    console.log(`${t.name.padEnd(20)} ${String(details.numRuns).padStart(9)} cases, no failure`);
  }
}
process.exit(failed ? 1 : 0);
