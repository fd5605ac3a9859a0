// The controller's dashboard in real Chromium (Debian's /usr/bin/chromium driven by playwright-core): it loads with
// no console errors, lists the hosts, and follows a rollout live. A phone-sized screenshot is kept as an artifact.
/* eslint-disable @typescript-eslint/no-explicit-any -- functions below run in the page, where `document` exists */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCli, type CliProcess } from '../helpers/cli.js';
import { agentArgs, api, publishCli, startController, until, writeToken } from '../helpers/fleet.js';
import type { ChannelView } from '../../src/fleet/types.js';

const CHROMIUM = '/usr/bin/chromium';

// The few playwright-core calls used here, typed locally: the test compiles whether or not the package is installed.
interface PwMessage { type(): string; text(): string }
interface PwPage {
  on(ev: 'console', fn: (m: PwMessage) => void): void;
  on(ev: 'pageerror', fn: (e: Error) => void): void;
  on(ev: 'requestfailed', fn: (r: { url(): string }) => void): void;
  goto(url: string, opts?: { waitUntil?: string }): Promise<unknown>;
  waitForSelector(sel: string, opts?: { timeout?: number }): Promise<unknown>;
  waitForFunction<A>(fn: (arg: A) => unknown, arg: A, opts?: { timeout?: number; polling?: number }): Promise<unknown>;
  evaluate<T>(expr: string): Promise<T>;
  screenshot(opts: { path: string; fullPage?: boolean }): Promise<unknown>;
  textContent(sel: string): Promise<string | null>;
}
interface PwBrowser { newPage(opts?: { viewport?: { width: number; height: number }; deviceScaleFactor?: number }): Promise<PwPage>; close(): Promise<void> }
interface Playwright { chromium: { launch(opts: { executablePath: string; headless: boolean; args: string[] }): Promise<PwBrowser> } }

async function loadPlaywright(): Promise<Playwright | undefined> {
  const name = 'playwright-core';
  try { return (await import(name)) as Playwright; } catch { /* not installed */ }
  // Local runs before the dependency lands: SHOAL_PLAYWRIGHT_CORE=/path/to/node_modules/playwright-core
  const alt = process.env['SHOAL_PLAYWRIGHT_CORE'];
  if (alt) return (await import(join(alt, 'index.mjs'))) as Playwright;
  return undefined;
}

test('dashboard: loads cleanly, shows the hosts, follows a rollout', { timeout: 90_000 }, async (t) => {
  const pw = await loadPlaywright();
  const missing = !pw ? 'playwright-core is not installed' : !existsSync(CHROMIUM) ? `${CHROMIUM} is missing` : undefined;
  if (missing) {
    if (process.env['CI'] === 'true') assert.fail(`${missing}: the dashboard test needs it in CI`);
    t.skip(missing);
    return;
  }
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-dash-'));
  const artifacts = await fsp.mkdtemp(join(tmpdir(), 'shoal-dash-artifacts-'));
  const procs: CliProcess[] = [];
  // launch() gives Chromium a fresh, empty --user-data-dir of its own (and refuses one passed in args).
  const browser = await pw!.chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  t.after(async () => {
    await browser.close().catch(() => undefined);
    await Promise.all(procs.map((p) => p.stop(3000)));
    await fsp.rm(dir, { recursive: true, force: true });
  });
  const tokenFile = join(dir, 'token');
  await writeToken(tokenFile);
  const ctl = await startController(dir, tokenFile);
  procs.push(ctl.proc);
  const hosts = ['web-1', 'web-2', 'db-1', 'db-2'];
  const agents = hosts.map((h, i) => startCli(agentArgs(ctl.url, tokenFile, join(dir, h), h, ['--zone', i < 2 ? 'eu-1' : 'eu-2', '--rack', `r${i % 2}`])));
  procs.push(...agents);
  await Promise.all(agents.map((a) => a.waitFor('connected', 20_000)));
  await until('4 agents registered', 10_000, async () => {
    const r = await api<ChannelView>(ctl.url, '/api/channels/app');
    return r.status === 200 && r.body.summary.subscribed === 4 ? true : undefined;
  });

  const page = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const problems: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  await page.goto(ctl.url + '/', { waitUntil: 'load' });
  await page.waitForSelector('#live.on', { timeout: 10_000 });
  // Predicates are functions, not strings: the page's Content-Security-Policy forbids eval, and that stays on.
  await page.waitForFunction((sel) => (globalThis as any).document.querySelectorAll(sel).length === 4, '[data-channel="app"] .host', { timeout: 10_000 });
  const names = await page.evaluate<string[]>(`[...document.querySelectorAll('[data-channel="app"] .host')].map((e) => e.getAttribute('data-host'))`);
  assert.deepEqual([...names].sort(), [...hosts].sort());

  // A slow origin (1 MiB/s for 4 MiB) so the page has time to show the rollout under way.
  const data = join(dir, 'release.bin');
  await fsp.writeFile(data, randomBytes(4 * 1024 * 1024));
  const pub = publishCli([data, '--controller', ctl.url, '--token-file', tokenFile, '--channel', 'app', '--version', '1.0.0', '--upload-limit', '1MiB', '--timeout', '60']);
  // Seen on the page while the rollout is under way: a host in progress (or done before the rest).
  await page.waitForFunction((sel) => {
    const states: string[] = [...(globalThis as any).document.querySelectorAll(sel)].map((e: any) => e.getAttribute('data-state'));
    return states.includes('in-progress') || (states.includes('done') && states.some((s) => s !== 'done'));
  }, '[data-channel="app"] .host', { timeout: 20_000, polling: 100 });
  const midway = await page.evaluate<string[]>(`[...document.querySelectorAll('[data-channel="app"] .host')].map((e) => e.getAttribute('data-state'))`);
  assert.ok(midway.some((s) => s !== 'done'), `page showed the rollout midway: ${midway.join(',')}`);
  await page.screenshot({ path: join(artifacts, 'dashboard-midway.png'), fullPage: true });

  const r = await pub;
  assert.equal(r.code, 0, r.stderr);
  await page.waitForFunction((sel) => (globalThis as any).document.querySelector(sel)?.textContent === '4', '[data-channel="app"] .n-done', { timeout: 10_000 });
  const text = await page.textContent('[data-channel="app"]');
  assert.match(text ?? '', /1\.0\.0/);
  assert.match(text ?? '', /Completed in/);
  assert.match(text ?? '', /eu-1/);
  assert.match(text ?? '', /origin sent|peers/);
  const shot = join(artifacts, 'dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  process.stdout.write(`# dashboard screenshots: ${shot} and dashboard-midway.png beside it\n`);
  assert.deepEqual(problems, [], 'no console errors or failed requests');
  // Read-only without a token: the page's origin cannot change state.
  const post = await page.evaluate<number>(`fetch('/api/releases', { method: 'POST', body: '{}' }).then((r) => r.status)`);
  assert.equal(post, 401);
});
