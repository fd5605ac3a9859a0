import cliProgress from 'cli-progress';
import { isShoalError, type ShoalErrorCode } from '../util/errors.js';

/** Exit codes, documented in the README: scripts can tell bad input from a failed transfer. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  badInput: 3,
  storage: 4,
  network: 5,
  interrupted: 130,
} as const;

const CODE_EXIT: Partial<Record<ShoalErrorCode, number>> = {
  EUSAGE: EXIT.usage,
  EBENCODE: EXIT.badInput,
  EMETAINFO: EXIT.badInput,
  EMAGNET: EXIT.badInput,
  EPATH: EXIT.badInput,
  ESTORAGE: EXIT.storage,
  ETRACKER: EXIT.network,
  EWIRE: EXIT.network,
  ETIMEOUT: EXIT.network,
};

export interface OutputOptions {
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
}

/** One place that decides how things are shown: human text on stderr/stdout, or JSON lines on stdout. */
export class Output {
  readonly json: boolean;
  readonly verbose: boolean;
  readonly quiet: boolean;
  private bar: cliProgress.SingleBar | null = null;

  constructor(opts: OutputOptions) {
    this.json = opts.json === true;
    this.verbose = opts.verbose === true;
    this.quiet = opts.quiet === true;
  }

  /** A JSON line (json mode) — scripts read these; humans get `text` instead. */
  event(type: string, data: Record<string, unknown>, text?: string): void {
    if (this.json) process.stdout.write(JSON.stringify({ type, time: new Date().toISOString(), ...data }) + '\n');
    else if (text !== undefined && !this.quiet) this.line(text);
  }

  line(text: string): void {
    if (this.bar) this.bar.stop();
    process.stdout.write(text + '\n');
    if (this.bar) this.restartBar();
  }

  info(text: string): void {
    if (this.verbose && !this.json) {
      if (this.bar) { process.stderr.write('\n'); }
      process.stderr.write(text + '\n');
    }
  }

  warn(text: string): void {
    if (this.json) this.event('warning', { message: text });
    else if (!this.quiet) process.stderr.write(`warning: ${text}\n`);
  }

  private barTotal = 0;
  private barValue = 0;
  private barPayload: Record<string, unknown> = {};
  private barFormat = '';

  /** A progress bar on a TTY; on pipes a plain line every few seconds so logs stay readable. */
  startProgress(total: number, format: string): void {
    if (this.json || this.quiet) return;
    this.barTotal = total;
    this.barFormat = format;
    if (process.stderr.isTTY) this.restartBar();
  }

  private restartBar(): void {
    this.bar = new cliProgress.SingleBar({
      format: this.barFormat,
      stream: process.stderr,
      hideCursor: true,
      barsize: 30,
      etaBuffer: 20,
      fps: 5,
    }, cliProgress.Presets.shades_classic);
    this.bar.start(this.barTotal, this.barValue, this.barPayload);
  }

  private lastPlain = 0;
  updateProgress(value: number, payload: Record<string, unknown>, plain: () => string): void {
    this.barValue = value;
    this.barPayload = payload;
    if (this.bar) this.bar.update(value, payload);
    else if (!this.json && !this.quiet && Date.now() - this.lastPlain >= 5000) {
      this.lastPlain = Date.now();
      process.stderr.write(plain() + '\n');
    }
  }

  stopProgress(): void {
    if (this.bar) {
      this.bar.update(this.barValue, this.barPayload);
      this.bar.stop();
      this.bar = null;
    }
    this.barFormat = '';
  }

  /** Print an error as one line (never a stack trace unless --verbose) and return the exit code for it. */
  fail(err: unknown): number {
    this.stopProgress();
    const code = isShoalError(err) ? CODE_EXIT[err.code] ?? EXIT.failure : EXIT.failure;
    // One line whatever the source: scripts and log collectors split on newlines.
    const message = (err instanceof Error ? err.message : String(err)).replace(/\s*[\r\n]+\s*/g, ' ').trim();
    if (this.json) process.stdout.write(JSON.stringify({ type: 'error', code: isShoalError(err) ? err.code : 'EFAIL', message }) + '\n');
    process.stderr.write(`shoal: ${message}\n`);
    if (this.verbose && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    return code;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

export function formatRate(bytesPerSec: number): string {
  return `${formatBytes(bytesPerSec)}/s`;
}

export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Parse sizes like `262144`, `256k`, `256KiB`, `1M`, `1MiB`. */
export function parseSize(text: string): number {
  const m = /^(\d+)\s*(k|kib|kb|m|mib|mb|g|gib|gb)?$/i.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a size (e.g. 262144, 256KiB, 1MiB)`);
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('g') ? 1024 ** 3 : 1;
  return n * mult;
}
