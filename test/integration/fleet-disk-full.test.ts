// A real full disk (a 1 MiB tmpfs) under an agent: the 3 MiB release fails with a reported "disk-full", the agent
// stays up, keeps following its channel, and takes the next release that fits.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetAgent } from '../../src/fleet/agent.js';
import { FleetController } from '../../src/fleet/controller.js';
import { publish } from '../../src/fleet/publisher.js';
import type { ChannelView } from '../../src/fleet/types.js';
import { until } from '../helpers/fleet.js';

const TOKEN = 'disk-full-token-0123456789';

async function fullDisk(t: TestContext, debugInvariants: boolean): Promise<void> {
  if (process.getuid?.() !== 0) { t.skip('mounting a tmpfs needs root'); return; }
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-fleet-full-'));
  const small = join(dir, 'small-disk');
  await fsp.mkdir(small);
  try { execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small], { timeout: 10_000, stdio: 'ignore' }); } catch (e) {
    if (process.env['CI'] === 'true') throw e;
    t.skip(`cannot mount a tmpfs here: ${(e as Error).message}`);
    return;
  }
  const ctl = new FleetController({ httpPort: 0, tokens: [TOKEN] });
  let agent: FleetAgent | undefined;
  t.after(async () => {
    await agent?.close().catch(() => undefined);
    await ctl.close();
    try { execFileSync('umount', [small], { timeout: 10_000, stdio: 'ignore' }); } catch { execFileSync('umount', ['-l', small], { timeout: 10_000, stdio: 'ignore' }); }
    await fsp.rm(dir, { recursive: true, force: true });
  });
  await ctl.listen();
  agent = new FleetAgent({ controller: ctl.url, token: TOKEN, dir: small, channels: ['app'], name: 'tiny', client: { host: '127.0.0.1', debugInvariants } });
  const failures: string[] = [];
  agent.on('failed', (_c: string, v: string, err: string) => failures.push(`${v}: ${err}`));
  await agent.start();
  await until('agent registered', 10_000, async () => (ctl.view('app').summary.subscribed === 1 ? true : undefined));

  await fsp.writeFile(join(dir, 'big.bin'), randomBytes(3 * 1024 * 1024));
  const big = await publish({ path: join(dir, 'big.bin'), controller: ctl.url, token: TOKEN, channel: 'app', version: 'big', timeoutMs: 30_000, client: { host: '127.0.0.1' } });
  assert.equal(big.outcome, 'stalled', 'the only host failed');
  const v: ChannelView = ctl.view('app');
  assert.equal(v.hosts[0]!.state, 'failed');
  assert.equal(v.hosts[0]!.reason, 'disk-full', JSON.stringify(v.hosts[0]));
  assert.ok(failures.length > 0);

  // Still alive and following: a release that fits arrives and becomes current.
  await fsp.mkdir(join(dir, 'fits'));
  await fsp.writeFile(join(dir, 'fits', 'small.bin'), randomBytes(64 * 1024));
  const ok = await publish({ path: join(dir, 'fits', 'small.bin'), controller: ctl.url, token: TOKEN, channel: 'app', version: 'small', timeoutMs: 30_000, client: { host: '127.0.0.1' } });
  assert.equal(ok.outcome, 'complete');
  assert.equal(await fsp.readlink(join(small, 'app', 'current')), 'small');
}

// Once without and once with the engine's invariant checks: a torrent that failed on a full disk stops mid-piece, and
// the checks must not mistake that for a broken invariant (they did before the fix).
test('agent on a full disk: reported, not a crash; the next release that fits lands', { timeout: 60_000 }, (t) => fullDisk(t, false));
test('the same with engine invariants checked', { timeout: 60_000 }, (t) => fullDisk(t, true));
