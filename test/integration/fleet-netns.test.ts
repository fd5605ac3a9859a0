// A fleet across network namespaces in two zones: the controller and publisher on one host with a slow (shaped)
// uplink, four agents on hosts of their own. Agents are seen at their own addresses, the zones file places them, and
// most bytes come from other agents rather than the origin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createLan, requireLan } from '../helpers/netns.js';
import { NsCli, writeToken } from '../helpers/fleet.js';
import type { AgentRecord, ChannelView } from '../../src/fleet/types.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('fleet in network namespaces: two zones, agents at their own addresses, peers carry most bytes', { timeout: 60_000 }, async (t) => {
  if (!requireLan(t)) return;
  const lan = createLan(5);
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-fleet-ns-'));
  const procs: NsCli[] = [];
  t.after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    lan.destroy();
    await fsp.rm(dir, { recursive: true, force: true });
  });
  const [origin, ...hosts] = lan.hosts;
  // The origin's uplink is the bottleneck (20 Mbit/s); agents upload at 200 Mbit/s.
  const shape = (ns: string, rate: string): void => { execFileSync('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', rate, 'burst', '64kb', 'latency', '50ms'], { timeout: 10_000 }); };
  shape(origin!.ns, '20mbit');
  for (const h of hosts) shape(h.ns, '200mbit');
  const zones = join(dir, 'zones.txt');
  await fsp.writeFile(zones, hosts.map((h, i) => `${h.ip}/32 ${i < 2 ? 'east' : 'west'} r${i % 2}`).join('\n') + '\n');
  const tokenFile = join(dir, 'token');
  await writeToken(tokenFile);
  const url = `http://${origin!.ip}:7070`;
  const ctl = new NsCli(origin!.ns, ['controller', '--host', origin!.ip, '--http-port', '7070', '--state', join(dir, 'state'), '--token-file', tokenFile, '--zones', zones, '--json']);
  procs.push(ctl);
  await ctl.waitFor('listening', 15_000);
  const agents = hosts.map((h, i) => new NsCli(h.ns, [
    'agent', '--controller', url, '--token-file', tokenFile, '--dir', join(dir, `agent${i}`), '--channel', 'app', '--name', `agent${i}`,
    '--host', h.ip, '--zone', i < 2 ? 'east' : 'west', '--rack', `r${i % 2}`, '--json',
  ]));
  procs.push(...agents);
  await Promise.all(agents.map((a) => a.waitFor('connected', 20_000)));

  const data = randomBytes(8 * 1024 * 1024);
  await fsp.writeFile(join(dir, 'release.bin'), data);
  const pub = new NsCli(origin!.ns, ['publish', join(dir, 'release.bin'), '--controller', url, '--token-file', tokenFile, '--channel', 'app', '--version', 'v1', '--host', origin!.ip, '--timeout', '40', '--json']);
  procs.push(pub);
  const summary = await pub.waitFor('summary', 50_000);
  assert.equal(summary['outcome'], 'complete', pub.stdout);
  for (let i = 0; i < hosts.length; i++) assert.equal(sha(readFileSync(join(dir, `agent${i}`, 'app', 'current', 'release.bin'))), sha(data));

  const status = new NsCli(origin!.ns, ['status', '--controller', url, '--channel', 'app', '--json']);
  const view = (await status.waitFor('channel', 10_000)) as unknown as ChannelView;
  assert.equal(view.summary.done, 4);
  assert.deepEqual(view.zones.map((z) => `${z.zone}/${z.rack}:${z.done}/${z.total}`), ['east/r0:1/1', 'east/r1:1/1', 'west/r0:1/1', 'west/r1:1/1']);
  // Agents reached the controller from their own addresses (the tracker saw the same ones, through the proxy).
  const records = JSON.parse(execFileSync('ip', ['netns', 'exec', origin!.ns, process.execPath, '-e',
    `fetch(${JSON.stringify(url + '/api/agents')}).then(r=>r.text()).then(t=>process.stdout.write(t))`], { encoding: 'utf8', timeout: 10_000 })) as AgentRecord[];
  assert.deepEqual(records.map((r) => r.remoteAddress).sort(), hosts.map((h) => h.ip).sort());
  // The origin sent little more than one copy; the rest went agent to agent.
  const copies = summary['originCopies'] as number;
  assert.ok(copies < 2.5, `origin sent ${copies.toFixed(2)} copies for 4 agents`);
  assert.ok(view.bytes.fromPeers > view.bytes.fromOrigin, JSON.stringify(view.bytes));
  process.stdout.write(`# netns fleet: last host after ${(summary['timeToLastHost'] as number).toFixed(2)} s, origin copies ${copies.toFixed(2)}, bytes ${JSON.stringify(view.bytes)}\n`);
});
