// A fleet across network namespaces: the controller and the publisher on one host, 8 agents on hosts of their own in
// two zones (a, b), every host's upload shaped with tbf (the origin's slowest). One rollout runs to the end (identical
// bytes in `current`, hook run, every host done in the API, agents seen at their own addresses, peers carrying most
// bytes); then a release is superseded mid-rollout, and during its successor's rollout one agent is killed (-9)
// mid-download and the controller is killed (-9); both restart, and the rollout completes with nothing lost.
// Every process is started and stopped by PID.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createLan, requireLan } from '../helpers/netns.js';
import { NsCli, NsFetcher, until, writeToken } from '../helpers/fleet.js';
import type { AgentRecord, ChannelView } from '../../src/fleet/types.js';

const MiB = 1024 * 1024;
const AGENTS = 8;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const zoneOf = (i: number): string => (i < AGENTS / 2 ? 'a' : 'b');

test('fleet in network namespaces: 8 agents in two zones; rollout, supersession, kill -9 of an agent and of the controller', { timeout: 150_000 }, async (t) => {
  if (!requireLan(t)) return;
  const lan = createLan(AGENTS + 1);
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-fleet-ns-'));
  const procs: NsCli[] = [];
  let fetcher: NsFetcher | undefined;
  t.after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await fetcher?.stop();
    lan.destroy();
    await fsp.rm(dir, { recursive: true, force: true });
  });
  const [origin, ...hosts] = lan.hosts;
  // The origin's uplink is the bottleneck (8 Mbit/s, so a 6 MiB release needs 6 s of it); agents upload at 40 Mbit/s.
  const shape = (ns: string, rate: string): void => { execFileSync('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', rate, 'burst', '32kb', 'latency', '50ms'], { timeout: 10_000 }); };
  shape(origin!.ns, '8mbit');
  for (const h of hosts) shape(h.ns, '40mbit');
  const zones = join(dir, 'zones.txt');
  await fsp.writeFile(zones, hosts.map((h, i) => `${h.ip}/32 ${zoneOf(i)} r${i % 2}`).join('\n') + '\n');
  const tokenFile = join(dir, 'token');
  await writeToken(tokenFile);
  const url = `http://${origin!.ip}:7070`;
  fetcher = new NsFetcher(origin!.ns);
  const view = (): Promise<ChannelView> => fetcher!.json<ChannelView>(`${url}/api/channels/app`);
  const agentRecords = (): Promise<AgentRecord[]> => fetcher!.json<AgentRecord[]>(`${url}/api/agents`);
  const controllerArgs = ['controller', '--host', origin!.ip, '--http-port', '7070', '--state', join(dir, 'state'), '--token-file', tokenFile, '--zones', zones, '--json'];
  let ctl = new NsCli(origin!.ns, controllerArgs);
  procs.push(ctl);
  await ctl.waitFor('listening', 15_000);

  const data: Record<string, Buffer> = {};
  for (const [v, size] of [['v1', 3 * MiB], ['v2', 6 * MiB], ['v3', 6 * MiB]] as const) {
    data[v] = randomBytes(size);
    await fsp.mkdir(join(dir, 'src', v), { recursive: true });
    await fsp.writeFile(join(dir, 'src', v, 'app.bin'), data[v]!);
  }
  const agentArgs = hosts.map((h, i) => [
    'agent', '--controller', url, '--token-file', tokenFile, '--dir', join(dir, `agent${i}`), '--channel', 'app', '--name', `agent${i}`,
    '--host', h.ip, '--zone', zoneOf(i), '--rack', `r${i % 2}`, '--keep', '3', '--json',
    '--on-release', 'echo "$SHOAL_CHANNEL $SHOAL_VERSION $(basename "$SHOAL_PATH")" >> "$SHOAL_PATH/../hooks.log"',
  ]);
  const agents = hosts.map((h, i) => new NsCli(h.ns, agentArgs[i]!));
  procs.push(...agents);
  await Promise.all(agents.map((a) => a.waitFor('connected', 30_000)));
  await until('8 agents registered', 15_000, async () => ((await view()).summary.subscribed === AGENTS ? true : undefined));
  const publish = (v: string, extra: string[] = []): NsCli => {
    const p = new NsCli(origin!.ns, ['publish', join(dir, 'src', v, 'app.bin'), '--controller', url, '--token-file', tokenFile, '--channel', 'app',
      '--version', v, '--host', origin!.ip, '--timeout', '60', '--json', ...extra]);
    procs.push(p);
    return p;
  };

  // --- v1 rolls out to the end.
  const p1 = publish('v1');
  const s1 = await p1.waitFor('summary', 60_000);
  assert.equal(s1['outcome'], 'complete', p1.stdout);
  // The hook runs right after the switch, which the publisher already saw: its exit status follows in the next report.
  const v1 = await until('every hook reported', 10_000, async () => {
    const v = await view();
    return v.hosts.every((h) => h.hookExit !== undefined) ? v : undefined;
  });
  assert.equal(v1.summary.done, AGENTS);
  assert.ok(v1.hosts.every((h) => h.state === 'done' && h.current === 'v1' && h.hookExit === 0), JSON.stringify(v1.hosts));
  for (let i = 0; i < AGENTS; i++) {
    assert.equal(sha(readFileSync(join(dir, `agent${i}`, 'app', 'current', 'app.bin'))), sha(data['v1']!), `agent${i}: current holds v1's bytes`);
    assert.match(readFileSync(join(dir, `agent${i}`, 'app', 'hooks.log'), 'utf8'), /^app v1 v1$/m, `agent${i}: the hook ran with SHOAL_* set`);
  }
  assert.deepEqual(v1.zones.map((z) => `${z.zone}/${z.rack}:${z.done}/${z.total}`), ['a/r0:2/2', 'a/r1:2/2', 'b/r0:2/2', 'b/r1:2/2']);
  // Agents reached the controller from their own addresses (the tracker saw the same ones, through the proxy).
  assert.deepEqual((await agentRecords()).map((r) => r.remoteAddress).sort(), hosts.map((h) => h.ip).sort());
  // The origin sent little more than one copy; the rest went agent to agent.
  const copies = s1['originCopies'] as number;
  assert.ok(copies < 2.5, `origin sent ${copies.toFixed(2)} copies of v1 for ${AGENTS} agents`);
  assert.ok(v1.bytes.fromPeers > 2 * v1.bytes.fromOrigin, JSON.stringify(v1.bytes));

  // --- v2 is superseded by v3 while it rolls out. Its origin sends at most 512 KiB/s, so 6 MiB cannot be everywhere
  // before v3 is published (on a quiet machine v2 otherwise completed in 8 s, before v3's publisher had started).
  const p2 = publish('v2', ['--upload-limit', '512KiB']);
  await until('v2 rolling out', 20_000, async () => {
    const v = await view();
    return v.latest?.version === 'v2' && v.hosts.some((h) => h.progress > 0) && v.summary.done === 0 ? true : undefined;
  });
  const p3 = publish('v3');
  const s2 = await p2.waitFor('summary', 20_000);
  assert.equal(s2['outcome'], 'superseded', p2.stdout);

  // --- During v3's rollout: kill -9 one agent mid-download, then the controller; restart both.
  const victim = AGENTS - 1;
  const before = await until('v3 partly on the victim', 20_000, async () => {
    const v = await view();
    const h = v.hosts.find((x) => x.host === `agent${victim}`);
    return v.latest?.version === 'v3' && h && h.progress > 0.1 && h.progress < 0.6 ? h.progress : undefined;
  });
  process.kill(agents[victim]!.child.pid!, 'SIGKILL');
  await agents[victim]!.exited;
  const mid = await view();
  assert.ok(mid.summary.done < AGENTS, 'the controller goes down mid-rollout');
  process.kill(ctl.child.pid!, 'SIGKILL');
  await ctl.exited;
  ctl = new NsCli(origin!.ns, controllerArgs);
  procs.push(ctl);
  await ctl.waitFor('listening', 15_000);
  const after = await view();
  assert.deepEqual(after.versions, ['v1', 'v2', 'v3'], 'releases survive a controller crash');
  assert.equal(after.summary.subscribed, AGENTS, 'agents survive a controller crash');
  assert.equal(after.latest?.origin, mid.latest?.origin, 'the origin of the rollout survives');
  agents[victim] = new NsCli(hosts[victim]!.ns, agentArgs[victim]!);
  procs.push(agents[victim]!);
  // Every agent reconnects to the restarted controller (the victim connects afresh).
  await until('agents reconnected', 30_000, async () =>
    (agents.every((a, i) => a.events.filter((e) => e.type === 'connected').length >= (i === victim ? 1 : 2)) ? true : undefined));

  const s3 = await p3.waitFor('summary', 60_000);
  assert.equal(s3['outcome'], 'complete', p3.stdout);
  assert.equal(s3['done'], AGENTS);
  const v3 = await until('every v3 hook reported', 10_000, async () => {
    const v = await view();
    return v.hosts.every((h) => h.hookExit !== undefined) ? v : undefined;
  });
  assert.equal(v3.summary.done, AGENTS);
  assert.ok(v3.hosts.every((h) => h.state === 'done' && h.current === 'v3' && h.hookExit === 0), JSON.stringify(v3.hosts));
  for (let i = 0; i < AGENTS; i++) {
    const d = join(dir, `agent${i}`, 'app');
    assert.equal(sha(readFileSync(join(d, 'current', 'app.bin'))), sha(data['v3']!), `agent${i}: current holds v3's bytes`);
    assert.equal(await fsp.readlink(join(d, 'current')), 'v3');
    const hooks = readFileSync(join(d, 'hooks.log'), 'utf8');
    assert.match(hooks, /^app v3 v3$/m, `agent${i}: the hook ran for v3`);
  }
  // The victim resumed: after its restart it kept only what it lacked (`downloaded - wasted`: duplicates from the
  // endgame with seven seeds are discarded), not the whole release again.
  const rec = (await agentRecords()).find((r) => r.host === `agent${victim}`)!;
  const st = rec.releases.find((r) => r.version === 'v3')!;
  const size = data['v3']!.length;
  const kept = st.downloaded - (st.wasted ?? 0);
  assert.ok(kept <= size * (1 - before) + 0.05 * size, `victim had ${(before * 100).toFixed(0)}% before kill -9, then kept ${kept} of ${size} bytes: ${JSON.stringify(st)}`);
  process.stdout.write(`# netns fleet: v1 last host after ${(s1['timeToLastHost'] as number).toFixed(2)} s, origin copies ${copies.toFixed(2)}; ` +
    `v3 (through kill -9 of agent and controller) last host after ${(s3['timeToLastHost'] as number).toFixed(2)} s, origin copies ${(s3['originCopies'] as number).toFixed(2)}; victim killed at ${(before * 100).toFixed(0)}%\n`);
});
