import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { ShoalError } from '../util/errors.js';
import type { AgentRecord, Release } from './types.js';

interface Snapshot { version: 1; seq: number; releases: Release[]; agents: AgentRecord[] }

/** Most releases kept per channel in the controller's state; older ones only matter to agents that still hold them. */
const RELEASES_PER_CHANNEL = 50;

/**
 * The controller's state (channels, releases, agents) in memory, persisted to `<dir>/state.json` by write-then-rename
 * so a crash leaves either the old or the new file, never half of one. Releases are written before the API answers;
 * agent reports are batched (each report is a full snapshot, so a lost batch is repaired by the next report).
 */
export class FleetStore {
  protected seq = 0;
  protected readonly byChannel = new Map<string, Release[]>();
  protected readonly agentMap = new Map<string, AgentRecord>();
  /** Changes made by other controller instances sharing this state (Redis): the controller relays them as events. */
  onRemote: ((kind: 'release' | 'agent' | 'origin', data: Release | AgentRecord) => void) | undefined;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  /**
   * `batchMs`: how long report-driven changes wait to be written. Every agent re-sends its full state each few
   * seconds, so a crash loses nothing a report will not restore; writing the whole state (releases with their
   * torrents, every agent) with an fsync twice a second cost the controller more than the reports themselves.
   */
  constructor(private readonly dir: string | undefined, private readonly batchMs = 2000) {}

  get file(): string | undefined { return this.dir ? join(this.dir, 'state.json') : undefined; }

  async load(): Promise<void> {
    if (!this.dir) return;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    let text: string;
    try { text = await readFile(this.file!, 'utf8'); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new ShoalError('ESTORAGE', `cannot read ${this.file}: ${(e as Error).message}`);
    }
    let snap: Snapshot;
    try { snap = JSON.parse(text) as Snapshot; } catch {
      throw new ShoalError('ESTORAGE', `${this.file} is not valid JSON; move it away to start with an empty fleet`);
    }
    this.seq = snap.seq ?? 0;
    for (const r of snap.releases ?? []) {
      const list = this.byChannel.get(r.channel) ?? [];
      list.push(r);
      this.byChannel.set(r.channel, list);
    }
    for (const list of this.byChannel.values()) list.sort((a, b) => a.seq - b.seq);
    for (const a of snap.agents ?? []) this.agentMap.set(a.id, a);
  }

  channels(): string[] { return [...this.byChannel.keys()].sort(); }

  /** Oldest first. */
  releases(channel: string): Release[] { return this.byChannel.get(channel) ?? []; }

  latest(channel: string): Release | undefined {
    const l = this.byChannel.get(channel);
    return l?.[l.length - 1];
  }

  release(channel: string, version: string): Release | undefined {
    return this.byChannel.get(channel)?.find((r) => r.version === version);
  }

  async addRelease(r: Omit<Release, 'seq'>): Promise<Release> {
    if (this.release(r.channel, r.version)) throw new ShoalError('EUSAGE', `channel ${r.channel} already has version ${r.version}`);
    const rel: Release = { ...r, seq: ++this.seq };
    this.insertRelease(rel);
    await this.saveNow();
    return rel;
  }

  /** Adds or replaces a release in memory, keeping each channel ordered by seq and bounded. */
  protected insertRelease(rel: Release): void {
    const list = (this.byChannel.get(rel.channel) ?? []).filter((x) => x.version !== rel.version);
    list.push(rel);
    list.sort((a, b) => a.seq - b.seq);
    if (list.length > RELEASES_PER_CHANNEL) list.splice(0, list.length - RELEASES_PER_CHANNEL);
    this.byChannel.set(rel.channel, list);
    this.seq = Math.max(this.seq, rel.seq);
  }

  setOriginStats(channel: string, version: string, stats: NonNullable<Release['originStats']>): boolean {
    const r = this.release(channel, version);
    if (!r) return false;
    r.originStats = stats;
    this.markDirty();
    return true;
  }

  agents(): AgentRecord[] { return [...this.agentMap.values()]; }
  agent(id: string): AgentRecord | undefined { return this.agentMap.get(id); }

  putAgent(a: AgentRecord): void {
    this.agentMap.set(a.id, a);
    this.markDirty();
  }

  protected markDirty(): void {
    this.dirty = true;
    if (!this.dir || this.timer) return;
    this.timer = setTimeout(() => { this.timer = undefined; void this.saveNow().catch(() => undefined); }, this.batchMs);
    this.timer.unref();
  }

  /** Writes the state now (serialised with any write in flight). */
  saveNow(): Promise<void> {
    if (!this.dir) return Promise.resolve();
    this.dirty = false;
    const snap: Snapshot = { version: 1, seq: this.seq, releases: [...this.byChannel.values()].flat(), agents: this.agents() };
    const text = JSON.stringify(snap);
    this.writing = this.writing.catch(() => undefined).then(() => writeAtomic(this.file!, text));
    return this.writing;
  }

  async close(): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    if (this.dirty) await this.saveNow();
    await this.writing.catch(() => undefined);
  }
}

export async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}
