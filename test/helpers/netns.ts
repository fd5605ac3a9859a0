// A LAN of network namespaces for tests: one bridge namespace and N host namespaces, each joined to the
// bridge by a veth pair, addressed from one /24 in 198.18.0.0/15, with multicast flowing (bridge multicast
// snooping off, a 224.0.0.0/4 route on every host). Nothing is created in the root namespace. Layout as in
// bench/lib/netns.ts, but every name carries a prefix unique to this test run (the bench's fixed prefix and
// its sweep() of all `shoalbench-` namespaces would tear down a concurrent run's), and teardown removes
// exactly the namespaces this LAN created, also when the test process exits early.
import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import type { TestContext } from 'node:test';
import { run, onProcessExit } from './real-peers/proc.js';
import { requireNetns } from './real-peers/require-peer.js';

export const LAN_PREFIX = 'shoaltest-';

export interface LanHost {
  /** Namespace name. */
  readonly ns: string;
  /** IPv4 address of `ifname` (in 198.18.0.0/15). */
  readonly ip: string;
  readonly ifname: string;
  /** argv that runs `cmd` inside this host's namespace (for startProcess). */
  wrap(cmd: string, args: string[]): [string, string[]];
}

export interface Lan {
  readonly prefix: string;
  readonly hosts: LanHost[];
  /** Deletes every namespace this LAN created (which removes their veths). Idempotent, synchronous. */
  destroy(): void;
}

/** Namespace names as `ip netns list` shows them. */
export function listNamespaces(): string[] {
  let out = '';
  try { out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 }); } catch { return []; }
  return out.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

/**
 * Removes namespaces left by test runs that were killed (SIGKILL skips exit hooks): only names in our format
 * whose creating PID no longer exists.
 */
export function sweepDeadRuns(): number {
  let n = 0;
  for (const ns of listNamespaces()) {
    const m = new RegExp(`^${LAN_PREFIX}(\\d+)-[0-9a-f]+-`).exec(ns);
    if (!m) continue;
    const pid = Number(m[1]);
    try { process.kill(pid, 0); continue; } catch (e) { if ((e as NodeJS.ErrnoException).code === 'EPERM') continue; }
    try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 }); n++; } catch { /* raced */ }
  }
  return n;
}

/**
 * Like requireNetns (root + iproute2; fails under CI=true, skips elsewhere), and also checks that
 * `ip netns` works here (it needs /run/netns and CAP_SYS_ADMIN, missing in some containers).
 */
export function requireLan(t: TestContext): boolean {
  if (!requireNetns(t)) return false;
  let why: string | undefined;
  try { execFileSync('ip', ['netns', 'list'], { stdio: 'ignore', timeout: 10_000 }); } catch (e) { why = (e as Error).message; }
  if (why === undefined) return true;
  const msg = `ip netns is not usable here: ${why}`;
  if (process.env.CI === 'true') throw new Error(`${msg} (required under CI=true)`);
  t.skip(msg);
  return false;
}

export function createLan(count: number): Lan {
  if (!Number.isInteger(count) || count < 1 || count > 250) throw new Error(`createLan: 1-250 hosts, asked for ${count}`);
  sweepDeadRuns();
  const prefix = `${LAN_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}-`;
  const subnet = `198.18.${randomInt(2, 254)}`;
  const bridgeNs = `${prefix}br`;
  const created: string[] = [];
  let destroyed = false;
  const destroy = (): void => {
    if (destroyed) return;
    destroyed = true;
    unhook();
    for (const ns of created.reverse()) {
      try { run('ip', ['netns', 'del', ns]); } catch { /* already gone */ }
    }
  };
  const unhook = onProcessExit(destroy);
  const hosts: LanHost[] = [];
  const addNs = (name: string): void => { run('ip', ['netns', 'add', name]); created.push(name); };
  try {
    addNs(bridgeNs);
    // IGMP snooping would hold multicast back until a querier shows up; there is none on this LAN.
    run('ip', ['-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
    run('ip', ['-n', bridgeNs, 'link', 'set', 'br0', 'up']);
    for (let i = 0; i < count; i++) {
      const ns = `${prefix}h${i}`;
      const ip = `${subnet}.${i + 2}`;
      addNs(ns);
      // Without DAD the IPv6 link-local address is usable at once, not "tentative" for the first seconds.
      run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']);
      run('ip', ['-n', bridgeNs, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      run('ip', ['-n', bridgeNs, 'link', 'set', `v${i}`, 'master', 'br0', 'up']);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
      // Senders that do not pick an interface route multicast by the table; there is no default route here.
      run('ip', ['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
      hosts.push({ ns, ip, ifname: 'eth0', wrap: (cmd, args) => ['ip', ['netns', 'exec', ns, cmd, ...args]] });
    }
  } catch (e) {
    destroy();
    throw e;
  }
  return { prefix, hosts, destroy };
}

/**
 * Throws unless `host`'s namespace has only `lo` and the veth to the LAN's bridge, and no route but the LAN's:
 * then no packet from it can reach a real network, sandbox or not.
 */
export function assertSealed(host: LanHost): void {
  const links = run('ip', ['-n', host.ns, '-o', 'link', 'show']).split('\n').filter(Boolean)
    .map((l) => l.split(':')[1]!.trim().split('@')[0]!);
  if (links.sort().join(',') !== ['eth0', 'lo'].join(',')) throw new Error(`namespace ${host.ns} has links ${links.join(', ')}`);
  const routes = run('ip', ['-n', host.ns, '-4', 'route', 'show']).split('\n').filter(Boolean);
  if (routes.some((r) => r.startsWith('default'))) throw new Error(`namespace ${host.ns} has a default route`);
}
