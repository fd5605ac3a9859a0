import { randomBytes, randomInt } from 'node:crypto';
import { run, onProcessExit } from './proc.js';

/**
 * A network namespace joined to the root namespace by a veth pair on a /24 from 198.18.0.0/15:
 * the root side is `hostAddr` (x.x.x.1), the namespace side `nsAddr` (x.x.x.2). Clients that ignore
 * loopback peers (Transmission) run inside it; Shoal and trackers in the test process bind `hostAddr`.
 */
export interface Netns {
  readonly name: string;
  readonly hostAddr: string;
  readonly nsAddr: string;
  readonly hostIf: string;
  /** argv prefix that runs a command inside the namespace. */
  wrap(cmd: string, args: string[]): [string, string[]];
  /** Deletes the namespace (which removes the veth pair). Idempotent. */
  destroy(): void;
}

function subnetsInUse(): Set<string> {
  const used = new Set<string>();
  for (const m of run('ip', ['-4', '-o', 'route', 'show', 'table', 'all']).matchAll(/\b(198\.1[89]\.\d+)\.\d+/g)) used.add(m[1]!);
  for (const m of run('ip', ['-4', '-o', 'addr']).matchAll(/\b(198\.1[89]\.\d+)\.\d+/g)) used.add(m[1]!);
  return used;
}

export function createNetns(): Netns {
  const tag = randomBytes(3).toString('hex');
  const name = `shoal-${process.pid}-${tag}`;
  const hostIf = `sh${tag}a`;
  const nsIf = `sh${tag}b`;
  const used = subnetsInUse();
  let prefix: string | undefined;
  for (let i = 0; i < 100 && !prefix; i++) {
    const p = `198.${randomInt(18, 20)}.${randomInt(1, 255)}`;
    if (!used.has(p)) prefix = p;
  }
  if (!prefix) throw new Error('no free /24 in 198.18.0.0/15 for a test namespace');
  const hostAddr = `${prefix}.1`;
  const nsAddr = `${prefix}.2`;

  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    unhook();
    try { run('ip', ['netns', 'del', name]); } catch { /* never fully created */ }
    // The pair normally dies with the namespace; this catches a failure between the two steps.
    try { run('ip', ['link', 'del', hostIf]); } catch { /* already gone */ }
  };
  const unhook = onProcessExit(destroy);

  try {
    run('ip', ['netns', 'add', name]);
    run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', name]);
    run('ip', ['addr', 'add', `${hostAddr}/24`, 'dev', hostIf]);
    run('ip', ['link', 'set', hostIf, 'up']);
    run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    run('ip', ['-n', name, 'addr', 'add', `${nsAddr}/24`, 'dev', nsIf]);
    run('ip', ['-n', name, 'link', 'set', nsIf, 'up']);
  } catch (e) {
    destroy();
    throw e;
  }

  return {
    name, hostAddr, nsAddr, hostIf,
    wrap: (cmd, args) => ['ip', ['netns', 'exec', name, cmd, ...args]],
    destroy,
  };
}
