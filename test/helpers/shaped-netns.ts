// Network namespaces for tests: hosts on one bridge, addresses from 198.18.0.0/15 only, egress shaped with tbf
// where asked. Everything carries a prefix with this process's PID, and only those names are ever removed, so
// tests and benchmarks running at the same time never touch each other's namespaces.
import { execFileSync, spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export interface NsHost { ns: string; ip: string }
export interface TestNet { hosts: NsHost[]; teardown(): void }

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

/** Root, `ip` and `tc` are needed; missing under CI=true fails, elsewhere the test is skipped. */
export function requireNetns(t: TestContext): boolean {
  const why = process.getuid?.() !== 0 ? 'not root'
    : spawnSync('ip', ['-V']).error ? 'ip (iproute2) not installed'
      : spawnSync('tc', ['-V']).error ? 'tc (iproute2) not installed' : null;
  if (why === null) return true;
  if (process.env.CI === 'true') throw new Error(`network namespaces unavailable: ${why} (required under CI=true)`);
  t.skip(`network namespaces unavailable: ${why}`);
  return false;
}

/**
 * `count` hosts 198.18.<subnet>.(i+1)/24 on one bridge. `shape(i)` gives a tc rate ("40mbit") for host i's
 * upload, or undefined for an unshaped link.
 */
export function createTestNet(tag: string, count: number, subnet: number, shape: (i: number) => string | undefined): TestNet {
  const prefix = `st${process.pid}${tag}-`;
  const bridge = `${prefix}br`;
  const names: string[] = [];
  const teardown = (): void => {
    for (const ns of names.splice(0).reverse()) {
      try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* already gone */ }
    }
  };
  const hosts: NsHost[] = [];
  try {
    ip('netns', 'add', bridge);
    names.push(bridge);
    ip('-n', bridge, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', bridge, 'link', 'set', 'br0', 'up');
    for (let i = 0; i < count; i++) {
      const h: NsHost = { ns: `${prefix}h${i}`, ip: `198.18.${subnet}.${i + 1}` };
      ip('netns', 'add', h.ns);
      names.push(h.ns);
      ip('-n', bridge, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns);
      ip('-n', bridge, 'link', 'set', `v${i}`, 'master', 'br0', 'up');
      ip('-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0');
      ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
      ip('-n', h.ns, 'link', 'set', 'lo', 'up');
      const rate = shape(i);
      if (rate) execFileSync('tc', ['-n', h.ns, 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency', '50ms'], { stdio: 'ignore', timeout: 20_000 });
      hosts.push(h);
    }
  } catch (err) {
    teardown();
    throw err;
  }
  process.once('exit', teardown);
  return { hosts, teardown };
}
