// Network namespaces for the swarm: one bridge namespace and one namespace per host, joined by veth
// pairs, addresses from 198.18.0.0/15 only, each host's upload shaped with tbf. Everything this
// module creates carries PREFIX, and only names carrying it are ever removed.
import { execFileSync } from 'node:child_process';
import { run } from './proc.js';

export const PREFIX = 'shoalbench-';
const BRIDGE_NS = `${PREFIX}br`;

export interface Host { ns: string; ip: string }
export interface Net { hosts: Host[]; teardown(): void }

function ip(...args: string[]): Promise<unknown> {
  return run('ip', args, { timeoutMs: 30_000 });
}

export function listOurs(): string[] {
  let out = '';
  try { out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }); } catch { return []; }
  return out.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(PREFIX));
}

/** Removes every namespace carrying PREFIX: leftovers of a run that was killed. Synchronous so it also works on exit. */
export function sweep(): number {
  const ours = listOurs();
  for (const ns of ours) {
    try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* already gone */ }
  }
  return ours.length;
}

export function hostIp(i: number): string {
  if (i < 0 || i > 250) throw new Error(`swarm supports at most 250 hosts (asked for host ${i})`);
  return `198.18.1.${i + 1}`;
}

/**
 * Creates `count` hosts (host 0 is the seed) on one bridge. `rate` is a tc rate like "200mbit";
 * it shapes each host's egress (its upload), as in the Kumar–Ross model. `burst` is tbf's bucket (tc size syntax):
 * what may leave at line rate after a pause.
 */
export async function createNet(count: number, rate: string, burst = '256kb'): Promise<Net> {
  sweep();
  const hosts: Host[] = [];
  const net: Net = { hosts, teardown: sweep };
  try {
    await ip('netns', 'add', BRIDGE_NS);
    await ip('-n', BRIDGE_NS, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', BRIDGE_NS, 'link', 'set', 'br0', 'up');
    for (let i = 0; i < count; i++) {
      const h: Host = { ns: `${PREFIX}h${i}`, ip: hostIp(i) };
      await ip('netns', 'add', h.ns);
      await ip('-n', BRIDGE_NS, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns);
      await ip('-n', BRIDGE_NS, 'link', 'set', `v${i}`, 'master', 'br0', 'up');
      await ip('-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0');
      await ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
      await ip('-n', h.ns, 'link', 'set', 'lo', 'up');
      await run('tc', ['-n', h.ns, 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', rate, 'burst', burst, 'latency', '50ms'], { timeoutMs: 30_000 });
      hosts.push(h);
    }
  } catch (err) {
    sweep();
    throw err;
  }
  return net;
}

/**
 * GET `url` from inside namespace `ns` (the benchmark itself runs outside every namespace and cannot reach their
 * addresses): status and body, or undefined when there was no answer within `timeoutMs`.
 */
export async function nsHttpGet(ns: string, url: string, timeoutMs = 5000): Promise<{ status: number; body: string } | undefined> {
  const code = 'fetch(process.argv[1], { signal: AbortSignal.timeout(Number(process.argv[2])) })'
    + '.then(async (r) => { process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })); }, () => process.exit(1))';
  const r = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', code, url, String(timeoutMs)], { timeoutMs: timeoutMs + 5000, allowFail: true });
  if (r.code !== 0) return undefined;
  try { return JSON.parse(r.stdout) as { status: number; body: string }; } catch { return undefined; }
}
