// A fleet on loopback: one controller, a publisher per release and 8 agents (CLI processes; all on 127.0.0.1 with
// their own ports; zones "east"/"west" are agent labels). Covers a rollout, supersession mid-rollout, kill -9 of an
// agent and of the controller mid-rollout, a disk budget, a manifest signed by the wrong key, and token checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, startCli, type CliProcess } from '../helpers/cli.js';
import { agentArgs, api, publishCli, startController, until, writeToken } from '../helpers/fleet.js';
import type { ChannelView } from '../../src/fleet/types.js';

const MiB = 1024 * 1024;
const AGENTS = 8;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('fleet rollout: 8 agents, supersession, kill -9 of agent and controller, disk budget, signatures, tokens', { timeout: 120_000 }, async (t) => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'shoal-fleet-'));
  const procs: CliProcess[] = [];
  t.after(async () => {
    await Promise.all(procs.map((p) => p.stop(3000)));
    await fsp.rm(dir, { recursive: true, force: true });
  });
  const tokenFile = join(dir, 'token');
  await writeToken(tokenFile);
  const k = await runCli(['keygen', '-o', join(dir, 'release.pem'), '--json']);
  assert.equal(k.code, 0, k.stderr);
  const pub = (JSON.parse(k.stdout.trim()) as { publicKey: string }).publicKey;
  assert.equal((await runCli(['keygen', '-o', join(dir, 'other.pem')])).code, 0);
  const data: Record<string, Buffer> = {};
  for (const [v, size] of [['v1', 3 * MiB], ['v2', 6 * MiB], ['v3', 3 * MiB], ['v4', 3 * MiB], ['v5', 8 * MiB], ['v6', 1 * MiB]] as const) {
    data[v] = randomBytes(size);
    await fsp.mkdir(join(dir, 'src', v), { recursive: true });
    await fsp.writeFile(join(dir, 'src', v, 'app.bin'), data[v]!);
  }

  let ctl = await startController(dir, tokenFile);
  procs.push(ctl.proc);
  const url = ctl.url;
  const view = async (): Promise<ChannelView> => (await api<ChannelView>(url, '/api/channels/app')).body;

  // Tokens: reads are open, writes need one.
  assert.equal((await api(url, '/api/channels')).status, 200);
  const noToken = await api<{ error: string }>(url, '/api/releases', { method: 'POST', body: '{}' });
  assert.equal(noToken.status, 401);
  const badToken = await api(url, '/api/agents/x/report', { method: 'POST', body: '{}', headers: { Authorization: 'Bearer wrong-token-wrong-token' } });
  assert.equal(badToken.status, 401);
  const pubNoToken = await publishCli([join(dir, 'src', 'v1', 'app.bin'), '--controller', url, '--channel', 'app', '--version', 'v0', '--timeout', '5']);
  assert.notEqual(pubNoToken.code, 0);
  assert.match(pubNoToken.stdout + pubNoToken.stderr, /401|Bearer/);

  // 8 agents; a disk budget of 10 MiB fits two 3 MiB releases plus the 6 MiB one, never three beside it.
  const agentDirs: string[] = [];
  const args: string[][] = [];
  for (let i = 0; i < AGENTS; i++) {
    const d = join(dir, `host${i}`);
    agentDirs.push(d);
    args.push(agentArgs(url, tokenFile, d, `host${i}`, [
      '--zone', i < AGENTS / 2 ? 'east' : 'west', '--rack', `r${i % 2}`, '--keep', '5', '--max-disk', '10MiB', '--trust', pub,
      '--on-release', 'echo "$SHOAL_CHANNEL $SHOAL_VERSION $(basename "$SHOAL_PATH")" >> "$SHOAL_PATH/../hooks.log"',
    ]));
  }
  args[0]!.push('--api-port', '0');
  const agents: CliProcess[] = args.map((a) => startCli(a));
  procs.push(...agents);
  await Promise.all(agents.map((a) => a.waitFor('connected', 20_000)));
  await until('8 agents registered', 10_000, async () => ((await view()).summary.subscribed === AGENTS ? true : undefined));

  const publishArgs = (v: string, extra: string[] = []): string[] => [
    join(dir, 'src', v, 'app.bin'), '--controller', url, '--token-file', tokenFile, '--channel', 'app', '--version', v,
    '--key', join(dir, 'release.pem'), '--timeout', '60', ...extra,
  ];

  // v1 from a slow origin (256 KiB/s, so at least 12 s): still rolling out when v2 comes, which supersedes it.
  const p1 = publishCli(publishArgs('v1', ['--upload-limit', '256KiB']));
  await until('v1 rolling out', 15_000, async () => {
    const v = await view();
    return v.latest?.version === 'v1' && v.hosts.some((h) => h.progress > 0) ? true : undefined;
  });
  const p2 = publishCli(publishArgs('v2', ['--upload-limit', '1MiB']));
  const r1 = await p1;
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(JSON.parse(r1.stdout.trim().split('\n').pop()!).outcome, 'superseded');

  // kill -9 one agent mid-download of v2, then the controller; restart both.
  const victim = AGENTS - 1;
  await until('v2 partly on the victim', 20_000, async () => {
    const h = (await view()).hosts.find((x) => x.host === `host${victim}`);
    return (await view()).latest?.version === 'v2' && h && h.progress > 0.05 && h.progress < 0.9 ? true : undefined;
  });
  process.kill(agents[victim]!.pid, 'SIGKILL');
  await agents[victim]!.exited;
  process.kill(ctl.proc.pid, 'SIGKILL');
  await ctl.proc.exited;
  ctl = await startController(dir, tokenFile, ctl.port);
  procs.push(ctl.proc);
  const after = await view();
  assert.deepEqual(after.versions, ['v1', 'v2'], 'releases survive a controller crash');
  assert.equal(after.summary.subscribed, AGENTS, 'agents survive a controller crash');
  agents[victim] = startCli(args[victim]!);
  procs.push(agents[victim]!);
  // Every surviving agent reconnects to the restarted controller.
  await until('agents reconnected', 20_000, async () => (agents.slice(0, victim).every((a) => a.events.filter((e) => e.type === 'connected').length >= 2) ? true : undefined));

  const r2 = await p2;
  assert.equal(r2.code, 0, `${r2.stdout}\n${r2.stderr}`);
  const s2 = JSON.parse(r2.stdout.trim().split('\n').pop()!) as { outcome: string; done: number; originCopies: number };
  assert.equal(s2.outcome, 'complete');
  assert.equal(s2.done, AGENTS);
  const v2 = await view();
  assert.equal(v2.summary.done, AGENTS);
  for (const d of agentDirs) {
    assert.equal(sha(readFileSync(join(d, 'app', 'current', 'app.bin'))), sha(data['v2']!), `${d}: current holds v2's bytes`);
    assert.equal(await fsp.readlink(join(d, 'app', 'current')), 'v2');
    assert.match(readFileSync(join(d, 'app', 'hooks.log'), 'utf8'), /^app v2 v2$/m, 'the hook ran with SHOAL_* set');
  }
  assert.ok(v2.zones.some((z) => z.zone === 'east') && v2.zones.some((z) => z.zone === 'west'));
  const victimAfter = agents[victim]!;
  await victimAfter.waitFor('switched', 1);

  // Disk budget (10 MiB): v3 fits beside v2; v4 makes v2 (the oldest) go; current never goes.
  for (const v of ['v3', 'v4']) {
    const r = await publishCli(publishArgs(v));
    assert.equal(r.code, 0, r.stderr);
  }
  for (const d of agentDirs) {
    const held = (await fsp.readdir(join(d, 'app'))).filter((n) => /^v\d$/.test(n)).sort();
    assert.deepEqual(held, ['v3', 'v4'], `${d}: the oldest release went`);
    assert.equal(await fsp.readlink(join(d, 'app', 'current')), 'v4');
  }
  // v5 (8 MiB) cannot fit beside current v4 (3 MiB) in 10 MiB: a reported error, and current stays.
  const r5 = await publishCli(publishArgs('v5'));
  assert.equal(JSON.parse(r5.stdout.trim().split('\n').pop()!).outcome, 'stalled', r5.stdout);
  const v5 = await view();
  assert.equal(v5.summary.failed, AGENTS);
  assert.ok(v5.hosts.every((h) => h.reason === 'disk-full' && h.current === 'v4'), JSON.stringify(v5.hosts));
  for (const d of agentDirs) assert.equal(sha(readFileSync(join(d, 'app', 'current', 'app.bin'))), sha(data['v4']!));

  // A manifest signed by another key: every agent with --trust refuses it.
  const r6 = await publishCli([...publishArgs('v6').slice(0, -4), '--key', join(dir, 'other.pem'), '--timeout', '30']);
  assert.equal(JSON.parse(r6.stdout.trim().split('\n').pop()!).outcome, 'stalled', r6.stdout);
  const v6 = await view();
  assert.ok(v6.hosts.every((h) => h.state === 'failed' && h.reason === 'untrusted' && h.current === 'v4'), JSON.stringify(v6.hosts));
  for (const d of agentDirs) await assert.rejects(fsp.stat(join(d, 'app', 'v6')), 'nothing of a refused release is written');
  for (const a of agents) assert.ok(a.events.some((e) => e.type === 'refused' && e['version'] === 'v6'));

  // The agent's local status API and `shoal status` tell the same story.
  const apiPort = (await agents[0]!.waitFor('started', 1))['apiPort'] as number;
  const local = await api<{ id: string; current: Record<string, string>; controllerConnected: boolean }>(`http://127.0.0.1:${apiPort}`, '/status');
  assert.equal(local.status, 200);
  assert.equal(local.body.current['app'], 'v4');
  assert.equal(local.body.controllerConnected, true);
  const st = await runCli(['status', '--controller', url, '--channel', 'app', '--json']);
  assert.equal(st.code, 0, st.stderr);
  const ch = JSON.parse(st.stdout.trim()) as ChannelView & { type: string };
  assert.equal(ch.latest!.version, 'v6');
  assert.equal(ch.hosts.length, AGENTS);
  const human = await runCli(['status', '--controller', url]);
  assert.match(human.stdout, /^app: v6 .* 0\/8 done/m);
});
