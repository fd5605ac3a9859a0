import { readdirSync, readlinkSync, readFileSync } from 'node:fs';
import { endianness } from 'node:os';

export interface ProcessSocket { proto: 'tcp' | 'udp' | 'tcp6' | 'udp6'; local: string; remote: string }

/**
 * The TCP and UDP sockets a process holds, read from /proc (Linux). `ss -p` would do, but it lists
 * every socket on the machine, which on a busy test host overflows a child-process buffer.
 */
export function socketsOf(pid: number): ProcessSocket[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try { target = readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; } // closed meanwhile
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) inodes.add(m[1]!);
  }
  const out: ProcessSocket[] = [];
  for (const proto of ['tcp', 'udp', 'tcp6', 'udp6'] as const) {
    // The process's own namespace view: it may live in another network namespace than the caller.
    const lines = readFileSync(`/proc/${pid}/net/${proto}`, 'utf8').split('\n').slice(1);
    for (const line of lines) {
      const c = line.trim().split(/\s+/);
      if (c.length < 10 || !inodes.has(c[9]!)) continue;
      out.push({ proto, local: decodeAddr(c[1]!), remote: decodeAddr(c[2]!) });
    }
  }
  return out;
}

/** /proc/net addresses are hex words in host byte order, the port is big-endian hex: `0100007F:1A0B`. */
function decodeAddr(s: string): string {
  const [hex, portHex] = s.split(':') as [string, string];
  const raw = Buffer.from(hex, 'hex');
  if (endianness() === 'LE') for (let i = 0; i < raw.length; i += 4) raw.subarray(i, i + 4).reverse();
  const port = parseInt(portHex, 16);
  if (raw.length === 4) return `${raw.join('.')}:${port}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(raw.readUInt16BE(i).toString(16));
  return `[${groups.join(':')}]:${port}`;
}
