import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

const cache = new Map<string, boolean>();

function onPath(bin: string): boolean {
  if (bin.includes('/')) return executable(bin);
  return (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':').some((d) => d && executable(join(d, bin)));
}

function executable(p: string): boolean {
  try { accessSync(p, constants.X_OK); return true; } catch { return false; }
}

/** `python3:<module>` names a module importable by Debian's /usr/bin/python3 (where python3-libtorrent lives). */
function available(binary: string): boolean {
  let ok = cache.get(binary);
  if (ok === undefined) {
    if (binary.startsWith('python3:')) {
      const mod = binary.slice('python3:'.length);
      ok = spawnSync('/usr/bin/python3', ['-c', `import ${mod}`], { stdio: 'ignore', timeout: 20_000 }).status === 0;
    } else {
      ok = onPath(binary);
    }
    cache.set(binary, ok);
  }
  return ok;
}

/**
 * Whether a real peer can be used. Missing under CI=true fails the test (CI installs everything);
 * elsewhere the test is skipped with the install hint, and the caller must return when this is false.
 * `binary` is a command name, an absolute path, or `python3:<module>` (e.g. `python3:libtorrent`).
 */
export function requirePeer(t: TestContext, binary: string, aptPackage: string): boolean {
  if (available(binary)) return true;
  const msg = `${binary} not installed: apt-get install ${aptPackage}`;
  if (process.env.CI === 'true') throw new Error(`${msg} (required under CI=true)`);
  t.skip(msg);
  return false;
}

/** Network namespaces need root and iproute2; same skip/fail policy as requirePeer. */
export function requireNetns(t: TestContext): boolean {
  if (!requirePeer(t, 'ip', 'iproute2')) return false;
  if (process.getuid?.() === 0) return true;
  const msg = 'network namespace tests need root';
  if (process.env.CI === 'true') throw new Error(`${msg} (required under CI=true)`);
  t.skip(msg);
  return false;
}
