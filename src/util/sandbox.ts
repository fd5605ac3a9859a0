import { isIPv4, isIPv6 } from 'node:net';

/**
 * `SHOAL_SANDBOX=1` (set by the test runner, `.ci/run` and the benchmarks) confines Shoal to loopback and the
 * benchmark/test range 198.18.0.0/15: discovery (DHT routers, LSD multicast, PEX, trackers) must not reach the
 * machine's real networks. Every module that sends to an address it did not get from the user checks here.
 */
export function sandboxed(env: NodeJS.ProcessEnv = process.env): boolean {
  return env['SHOAL_SANDBOX'] === '1';
}

/** Is `host` (IPv4 dotted quad or IPv6 text, brackets stripped) inside loopback or 198.18.0.0/15? */
export function isSandboxAddress(host: string): boolean {
  let h = host;
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  const mapped = h.toLowerCase().startsWith('::ffff:') ? h.slice(7) : h;
  if (isIPv4(mapped)) {
    const parts = mapped.split('.').map(Number);
    const a = parts[0]!, b = parts[1]!;
    return a === 127 || (a === 198 && (b === 18 || b === 19));
  }
  if (isIPv6(h)) return h === '::1' || /^0*:0*:0*:0*:0*:0*:0*:0*1$/.test(h) || h === '0:0:0:0:0:0:0:1';
  return h === 'localhost';
}

/** True when sending to `host` is allowed: always outside the sandbox, only to sandbox addresses inside it. */
export function mayContact(host: string, env: NodeJS.ProcessEnv = process.env): boolean {
  return !sandboxed(env) || isSandboxAddress(host);
}
