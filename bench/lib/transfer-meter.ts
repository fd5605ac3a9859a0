// CPU per byte in the middle of a swarm transfer. The whole-run figure also carries each process's fixed costs:
// start-up work after the start signal, a JIT compiling its hot paths (V8 keeps compiling for tens of seconds), the
// first connections, and the tail, where a few pieces are fetched from few peers. On a short transfer those weigh as
// much as the bytes; the middle half shows what each further byte costs, the figure that matters for large payloads.
// Engine-independent: bytes are read from each downloader's network namespace, CPU from /proc, for any engine.
import { readFileSync } from 'node:fs';
import { cpuSplit, type Proc } from './proc.js';

interface Sample {
  /** Bytes received on the downloaders' hosts (all interfaces but loopback) since the meter started. */
  rx: number;
  /** CPU seconds of every measured process since the meter started: user+sys, and user alone. */
  cpu: number;
  user: number;
}

/** Bytes received by the network namespace `pid` lives in, all interfaces but loopback; undefined once it is gone. */
export function netnsRxBytes(pid: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/net/dev`, 'latin1');
  } catch {
    return undefined;
  }
  let rx = 0;
  // Two header lines, then "  name: rx_bytes rx_packets …".
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon).trim() === 'lo') continue;
    rx += Number(line.slice(colon + 1).trim().split(/\s+/)[0]);
  }
  return rx;
}

export interface WindowCost {
  /** CPU seconds (user+sys) and user seconds of all measured processes per GiB delivered inside the window. */
  cpuPerGiB: number;
  userPerGiB: number;
  /** Fractions of the received bytes that bound the window. */
  from: number;
  to: number;
}

/**
 * Samples, every `everyMs` while a swarm transfers, the bytes the downloaders' hosts have received and the CPU time of
 * every engine process (seed included: it serves the bytes). Each downloader must run in its own network namespace,
 * so that its host's counters are its own traffic.
 */
export class TransferMeter {
  private readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly rx0: number[];
  private readonly cpu0: { user: number; sys: number }[];

  constructor(private readonly all: readonly Proc[], private readonly downloaders: readonly Proc[], everyMs = 250) {
    this.rx0 = downloaders.map((p) => netnsRxBytes(p.measuredPid) ?? 0);
    this.cpu0 = all.map((p) => cpuSplit(p.measuredPid) ?? { user: 0, sys: 0 });
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  private sample(): void {
    let rx = 0;
    this.downloaders.forEach((p, i) => { rx += (netnsRxBytes(p.measuredPid) ?? this.rx0[i]!) - this.rx0[i]!; });
    let cpu = 0;
    let user = 0;
    this.all.forEach((p, i) => {
      const t = cpuSplit(p.measuredPid);
      if (!t) return;
      user += t.user - this.cpu0[i]!.user;
      cpu += t.user + t.sys - this.cpu0[i]!.user - this.cpu0[i]!.sys;
    });
    this.samples.push({ rx, cpu, user });
  }

  /** Takes a last sample and stops: call it when the last downloader completes. */
  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /**
   * CPU per GiB delivered between the moments the downloaders' hosts had received `from` and `to` of all they received
   * by stop(), interpolated between samples; `payloadBytes` is what they were to download in all (wire overhead is
   * spread evenly, so a fraction of the wire bytes stands for the same fraction of the payload). Null when the run was
   * too short to have samples inside the window.
   */
  window(payloadBytes: number, from = 0.25, to = 0.75): WindowCost | null {
    const total = this.samples[this.samples.length - 1]?.rx ?? 0;
    if (total <= 0) return null;
    const a = this.at(from * total);
    const b = this.at(to * total);
    if (!a || !b || b.index - a.index < 4) return null;
    const gib = ((to - from) * payloadBytes) / 2 ** 30;
    return { cpuPerGiB: (b.cpu - a.cpu) / gib, userPerGiB: (b.user - a.user) / gib, from, to };
  }

  /** CPU counters when `rx` bytes had been received, by linear interpolation; `index` is the sample at or after it. */
  private at(rx: number): { cpu: number; user: number; index: number } | undefined {
    const s = this.samples;
    for (let i = 1; i < s.length; i++) {
      if (s[i]!.rx < rx) continue;
      const p = s[i - 1]!;
      const q = s[i]!;
      const f = q.rx === p.rx ? 1 : (rx - p.rx) / (q.rx - p.rx);
      return { cpu: p.cpu + f * (q.cpu - p.cpu), user: p.user + f * (q.user - p.user), index: i };
    }
    return undefined;
  }
}
