#!/usr/bin/env node
// Runs the compiled tests with Node's own test runner.
// Usage: node scripts/run-tests.mjs [unit|integration|interop|adversarial ...] [--only substring]
// Node 20's `--test` does not expand globs, so the file list is built here.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../dist/test/', import.meta.url).pathname;
const args = process.argv.slice(2);
const onlyIdx = args.indexOf('--only');
const only = onlyIdx >= 0 ? args[onlyIdx + 1] : undefined;
const kinds = args.filter((a, i) => !a.startsWith('--') && (onlyIdx < 0 || i !== onlyIdx + 1));
const selected = kinds.length > 0 ? kinds : ['unit', 'adversarial', 'integration', 'interop'];

function walk(dir, out) {
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js') && (!only || p.includes(only))) out.push(p);
  }
  return out;
}

const files = selected.flatMap((k) => walk(join(root, k), []));
if (files.length === 0) {
  console.error('no test files found under', selected.map((k) => join(root, k)).join(', '));
  process.exit(1);
}
// SHOAL_SANDBOX=1: Shoal sends nothing outside loopback and 198.18.0.0/15 (no DHT routers, no LSD on real interfaces).
// SHOAL_DEBUG_INVARIANTS=1: every torrent checks its cross-structure invariants (src/engine/invariants.ts) each tick.
// SHOAL_STATE_DIR: state the CLI keeps between runs (the DHT routing table) goes to a scratch folder, not ~.
const stateDir = mkdtempSync(join(tmpdir(), 'shoal-test-state-'));
const env = { ...process.env, SHOAL_SANDBOX: '1', SHOAL_DEBUG_INVARIANTS: '1', SHOAL_STATE_DIR: stateDir };
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], { stdio: 'inherit', env });
rmSync(stateDir, { recursive: true, force: true });
process.exit(res.status ?? 1);
