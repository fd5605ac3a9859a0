// Result files (JSON per scenario run), charts, bench/results/latest.md and the results section of
// bench/README.md. latest.md is rebuilt from the newest result file of each scenario.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fmtSize } from './data.js';
import { displayName, ROOT } from './engines.js';
import type { Machine } from './machine.js';
import { fmt, fmtSummary, summarize } from './stats.js';
import { barChart, cdfChart } from './svg.js';
import type { Limits } from '../scenarios/limits.js';
import type { PairResult } from '../scenarios/pair.js';
import type { SwarmResult } from '../scenarios/swarm.js';
import type { CreateResult } from '../scenarios/create.js';
import { LAYOUTS, MEASURES, type Measure, type StreamResult } from '../scenarios/stream.js';
import { fleetMarkdown, type FleetBenchResult } from '../scenarios/fleet.js';

export const RESULTS_DIR = join(ROOT, 'bench/results');
const README = join(ROOT, 'bench/README.md');
const MARK_START = '<!-- latest-results:start -->';
const MARK_END = '<!-- latest-results:end -->';

export type Scenario = 'pair' | 'swarm' | 'create' | 'limits' | 'stream' | 'fleet';
export interface ResultFile {
  scenario: Scenario; startedAt: string; finishedAt: string; quick: boolean;
  options: Record<string, unknown>; machine: Machine; versions: Record<string, string | null>;
  limits?: Limits; pair?: PairResult[]; swarm?: SwarmResult[]; create?: CreateResult[]; stream?: StreamResult; fleet?: FleetBenchResult[];
  charts: string[]; notes: string[];
}

export function stamp(d: Date): string {
  return d.toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
}

/** Writes the JSON and charts of one scenario run; returns the JSON's path. */
export async function writeResult(r: ResultFile): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const base = `${stamp(new Date(r.startedAt))}-${r.scenario}${r.quick ? '-quick' : ''}`;
  if (r.pair?.length) {
    const name = `${base}.svg`;
    const bars = r.pair.map((p) => ({
      label: p.label, group: `${fmtSize(p.pieceLength)} pieces, ${fmtSize(Number(r.options.size))}`,
      median: p.summary.mbps?.median ?? NaN, min: p.summary.mbps?.min ?? NaN, max: p.summary.mbps?.max ?? NaN,
      highlight: p.seed === 'shoal' || p.leech === 'shoal',
    }));
    await writeFile(join(RESULTS_DIR, name), barChart('pair: one seed → one downloader on loopback', 'MB/s', bars));
    r.charts.push(name);
  }
  if (r.swarm?.length) {
    const keys = [...new Set(r.swarm.map(swarmKey))];
    for (const k of keys) {
      const group = r.swarm.filter((s) => swarmKey(s) === k);
      const g0 = group[0]!;
      const ws = g0.origin === 'webseed';
      const tr = g0.discovery === 'tracker';
      const name = `${base}-N${g0.peers}-${g0.rate}${ws ? '-webseed' : ''}${tr ? '-tracker' : ''}.svg`;
      const svg = cdfChart(`swarm: ${g0.peers} downloaders, ${fmtSize(g0.size)}, upload ${g0.rate} each${ws ? ', origin: nginx web seed' : ''}${tr ? ', peers via tracker' : ''}`,
        group.map((s) => ({ label: displayName(s.engine), times: s.completions })), g0.floorSeconds, `floor ${g0.floorSeconds.toFixed(1)} s`);
      await writeFile(join(RESULTS_DIR, name), svg);
      r.charts.push(name);
    }
  }
  const path = join(RESULTS_DIR, `${base}.json`);
  await writeFile(path, JSON.stringify(r, null, 2) + '\n');
  return path;
}

function latestOf(scenario: Scenario): ResultFile | undefined {
  if (!existsSync(RESULTS_DIR)) return undefined;
  const files = readdirSync(RESULTS_DIR).filter((f) => f.endsWith(`-${scenario}.json`) || f.endsWith(`-${scenario}-quick.json`)).sort();
  // Prefer a full run over a newer quick smoke run.
  const full = files.filter((f) => !f.includes('-quick.'));
  const pick = (full.length ? full : files).at(-1);
  if (!pick) return undefined;
  return JSON.parse(readFileSync(join(RESULTS_DIR, pick), 'utf8')) as ResultFile;
}

/** First line of a failure, without the run tag the scenario put in front. */
function failText(msg: string | undefined): string {
  return (msg ?? '').split('\n')[0]!.replace(/^\[[^\]]*\]\s*/, '').slice(0, 140).replace(/\|/g, '/');
}

const mark = (ok: boolean | undefined): string => (ok === undefined ? '–' : ok ? '✅ met' : '❌ not met');

function machineLine(r: ResultFile): string {
  const v = Object.entries(r.versions).filter(([, x]) => x).map(([k, x]) => `${k} ${x}`).join(', ');
  return `_${r.finishedAt.slice(0, 16).replace('T', ' ')} UTC${r.quick ? ' (quick smoke run: small sizes, not representative)' : ''} · ${r.machine.cpuModel}, ${r.machine.cores} cores, ${(r.machine.memoryBytes / 2 ** 30).toFixed(0)} GiB, Linux ${r.machine.kernel} · ${v}_`;
}

/** Both use OpenSSL's SHA-1: the faster of the two is the less disturbed measurement of the same code. */
export function sha1CeilingPerCore(l: Limits): number {
  return Math.max(l.sha1PerCoreMBps, l.sha1OpensslMBps ?? 0);
}

function contentionWarning(l: Limits): string[] {
  if (l.sha1OpensslMBps === null || l.sha1PerCoreMBps >= 0.8 * l.sha1OpensslMBps) return [];
  return [`⚠ Other work competed for the CPU during this run: the best SHA-1 window reached only ${fmt((l.sha1PerCoreMBps / l.sha1OpensslMBps) * 100, 0)} % of openssl's rate with the same library. Ratios between engines stay comparable (runs are interleaved); absolute numbers are low.`, ''];
}

export function limitsMarkdown(l: Limits): string {
  return [
    ...contentionWarning(l),
    '| Limit | MB/s |', '|---|---:|',
    `| SHA-1, one core (node:crypto, 1 MiB buffers, best 400 ms window) | ${fmt(l.sha1PerCoreMBps, 0)} |`,
    `| SHA-1, all ${l.cores} cores at once | ${fmt(l.sha1AllCoresMBps, 0)} |`,
    `| SHA-1, openssl speed (one core) | ${l.sha1OpensslMBps === null ? '–' : fmt(l.sha1OpensslMBps, 0)} |`,
    `| Loopback TCP copy, Node → Node into a file | ${l.tcpCopyMBps === null ? '–' : fmt(l.tcpCopyMBps, 0)} |`,
    `| Sequential disk write with fsync (dd) | ${l.diskWriteMBps === null ? '–' : fmt(l.diskWriteMBps, 0)} |`,
    `| **Lowest (${l.lowestIs})** | **${fmt(l.lowestMBps, 0)}** |`,
  ].join('\n');
}

export function pairMarkdown(r: ResultFile): string {
  const out: string[] = [];
  const pairs = r.pair ?? [];
  const lowest = r.limits?.lowestMBps;
  for (const pl of [...new Set(pairs.map((p) => p.pieceLength))]) {
    const rows = pairs.filter((p) => p.pieceLength === pl);
    const ref = rows.find((p) => p.seed === 'libtorrent' && p.leech === 'libtorrent');
    const refMbps = ref?.summary.mbps?.median;
    out.push(`**${fmtSize(Number(r.options.size))}, ${fmtSize(pl)} pieces** — median (min–max) of ${r.options.runs} runs; MB/s = 10⁶ bytes/s; CPU = user+sys seconds per GiB moved; anon = peak RssAnon (heap), RSS also counts mapped file pages`);
    out.push('');
    out.push('| Seed → downloader | Seconds | MB/s | × libtorrent | of limit | CPU s/GiB seed | CPU s/GiB downloader | Peak RSS MiB seed / dl | Peak anon MiB seed / dl |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const p of rows) {
      const s = p.summary;
      if (!s.mbps) { out.push(`| ${p.label} | failed (${p.failures.length} of ${p.failures.length} runs): ${failText(p.failures[0])} | | | | | | | |`); continue; }
      out.push(`| ${p.label} | ${fmtSummary(s.seconds)} | ${fmtSummary(s.mbps, 0)} | ${refMbps ? fmt(s.mbps.median / refMbps) : '–'} | ${lowest ? `${fmt((s.mbps.median / lowest) * 100, 0)}%` : '–'} | ${fmtSummary(s.seedCpuPerGiB)} | ${fmtSummary(s.leechCpuPerGiB)} | ${fmt(s.seedPeakRssMiB.median, 0)} / ${fmt(s.leechPeakRssMiB.median, 0)} | ${fmt(s.seedPeakAnonMiB.median, 0)} / ${fmt(s.leechPeakAnonMiB.median, 0)} |`);
    }
    for (const p of rows.filter((x) => x.runs.length && x.failures.length)) out.push('', `⚠ ${p.label}: ${p.failures.length} of ${p.failures.length + p.runs.length} runs failed (${failText(p.failures[0])}); the row summarizes the others.`);
    if (lowest) out.push('', `"of limit" = MB/s ÷ the lowest machine limit measured in the same run (${r.limits!.lowestIs}, ${fmt(lowest, 0)} MB/s). Above 100 % is possible when that limit is the fsync'd disk write: downloads land in the page cache.`);
    const shoal = rows.find((p) => p.seed === 'shoal' && p.leech === 'shoal')?.summary;
    const lt = ref?.summary;
    if (shoal?.mbps && lt?.mbps) {
      out.push('', `Targets (${fmtSize(pl)} pieces): Shoal MB/s ≥ 1.25× libtorrent: ${fmt(shoal.mbps.median / lt.mbps.median)}× ${mark(shoal.mbps.median >= 1.25 * lt.mbps.median)} · CPU/GiB ≤ libtorrent, seed ${fmt(shoal.seedCpuPerGiB.median)} vs ${fmt(lt.seedCpuPerGiB.median)} ${mark(shoal.seedCpuPerGiB.median <= lt.seedCpuPerGiB.median)}, downloader ${fmt(shoal.leechCpuPerGiB.median)} vs ${fmt(lt.leechCpuPerGiB.median)} ${mark(shoal.leechCpuPerGiB.median <= lt.leechCpuPerGiB.median)} · anon < 100 MiB: ${fmt(Math.max(shoal.seedPeakAnonMiB.max, shoal.leechPeakAnonMiB.max), 0)} MiB ${mark(Math.max(shoal.seedPeakAnonMiB.max, shoal.leechPeakAnonMiB.max) < 100)}`);
    }
    out.push('');
  }
  return out.join('\n');
}

export function swarmMarkdown(r: ResultFile): string {
  const out: string[] = [];
  const all = r.swarm ?? [];
  for (const k of [...new Set(all.map(swarmKey))]) {
    const rows = all.filter((s) => swarmKey(s) === k);
    const g = rows[0]!;
    const ws = g.origin === 'webseed';
    const how = g.discovery === 'tracker'
      ? `, peers found through an opentracker${ws ? '' : ' and the seed\'s address'}`
      : ', every pair of peers introduced by the harness';
    const lt = rows.find((s) => s.engine === 'libtorrent' && s.ok) ?? rows.find((s) => s.engine === 'libtorrent-default' && s.ok);
    out.push(`**${g.peers} downloaders, ${fmtSize(g.size)}, ${fmtSize(g.pieceLength)} pieces, every host's upload ${g.rate}${ws ? ', origin: nginx as web seed (no BitTorrent seed)' : ''}${how}** — floor T_min = ${fmt(g.floorSeconds)} s (${fmt(g.floorEffectiveSeconds)} s at tbf's payload rate ×1448/1514)`);
    out.push('');
    out.push('| Engine | Last done, s | × floor | × tbf-effective floor | × libtorrent | Origin copies | Done at: first / median / p90 / last, s | CPU s: seed / per downloader | CPU s per GiB moved | CPU s per GiB, middle half | CPU ours | CPU busy (machine) | Peak anon MiB: seed / downloaders median, max |');
    out.push('|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|');
    for (const s of rows) {
      if (!s.ok) { out.push(`| ${displayName(s.engine)} | failed: ${failText(s.failure)} | | | | | | | | | | | |`); continue; }
      const m = s.peakAnonMiB;
      const anonCell = m ? `${m.seed === null ? '–' : fmt(m.seed, 0)} / ${fmt(m.downloaderMedian, 0)}, ${fmt(m.downloaderMax, 0)}` : '–';
      const c = s.cpuSeconds;
      const cpuCell = c ? `${c.seed === null ? '–' : fmt(c.seed, 1)} / ${fmt(c.downloaderMean, 1)}` : '–';
      out.push(`| ${displayName(s.engine)} | ${fmt(s.lastSeconds)} | ${fmt(s.ratioToFloor)} | ${fmt(s.ratioToEffectiveFloor)} | ${lt ? fmt(s.lastSeconds / lt.lastSeconds) : '–'} | ${s.originCopies === null ? '–' : fmt(s.originCopies)} | ${fmt(s.spread.first, 1)} / ${fmt(s.spread.median, 1)} / ${fmt(s.spread.p90, 1)} / ${fmt(s.spread.last, 1)} | ${cpuCell} | ${s.cpuPerGiB === undefined ? '–' : fmt(s.cpuPerGiB)}${s.cpuSplitPerGiB ? ` (${fmt(s.cpuSplitPerGiB.user)} user)` : ''} | ${s.middleCpuPerGiB ? `${fmt(s.middleCpuPerGiB.total)} (${fmt(s.middleCpuPerGiB.user)} user)` : '–'} | ${fmt(s.cpuShareOurs * 100, 0)}%${s.saturated ? ' ⚠ saturated' : ''} | ${fmt(s.cpuBusy * 100, 0)}%${s.contended ? ' (contended)' : ''} | ${anonCell} |`);
    }
    if (rows.some((s) => s.cpuPerGiB !== undefined)) out.push('', `CPU s per GiB moved = user+sys seconds of all the engine's processes (seed${ws ? ': none, nginx is not counted' : ''} and downloaders) from the start signal to the last completion ÷ GiB delivered (${g.peers} × ${fmtSize(g.size)}); each byte moved is uploaded once and downloaded once, so both ends are in it. In brackets, the part spent in user space (the rest is kernel time: TCP, the page cache, page faults, much the same work for every engine). Middle half: the same, counted only from the moment the downloaders' hosts had received a quarter of their bytes to three quarters (bytes read from each host's network namespace): what each further byte costs, without start-up, a JIT's warm-up and the tail, which weigh as much as the bytes on a short transfer.`);
    const sh = rows.find((s) => s.engine === 'shoal' && s.ok);
    const maxCopies = ws ? 1.3 : 1.1;
    if (sh) out.push('', `Targets: last done ≤ 1.15× floor: ${fmt(sh.ratioToFloor)}× ${mark(sh.ratioToFloor <= 1.15)} · origin copies ≤ ${maxCopies}: ${sh.originCopies === null ? '–' : fmt(sh.originCopies)} ${mark(sh.originCopies === null ? undefined : sh.originCopies <= maxCopies)}`);
    if (rows.some((s) => s.saturated)) out.push('', `⚠ The engines saturated the cores in some of these runs: their times measure CPU, not distribution.${r.options.adaptedFrom ? ' See the run at the lower rate.' : ' Rerun with a lower --rate.'}`);
    if (rows.some((s) => s.contended && !s.saturated)) out.push('', 'Machine busy ≥ 90% while the engines used less: other work on this shared machine competed for the cores, so times may be inflated.');
    out.push('');
  }
  for (const n of r.notes) out.push(`- ${n}`);
  return out.join('\n');
}

export function createMarkdown(r: ResultFile): string {
  const out: string[] = [];
  const l = r.limits!;
  const perCore = sha1CeilingPerCore(l);
  const ceiling = perCore * l.cores;
  out.push(...contentionWarning(l));
  out.push(`**${fmtSize(Number(r.options.size))} file, ${fmtSize(Number(r.options.pieceLength))} pieces, warm page cache** — ceiling = SHA-1 ${fmt(perCore, 0)} MB/s per core (the faster of node:crypto and openssl speed, same run) × ${l.cores} cores = ${fmt(ceiling, 0)} MB/s`);
  out.push('');
  out.push('| Tool | Seconds | MB/s | of SHA-1 × cores | CPU s |');
  out.push('|---|---:|---:|---:|---:|');
  for (const c of r.create ?? []) {
    if (!c.runs.length) { out.push(`| ${c.tool} | failed: ${failText(c.failures[0])} | | | |`); continue; }
    out.push(`| ${c.tool} | ${fmtSummary(c.summary.seconds)} | ${fmtSummary(c.summary.mbps, 0)} | ${fmt((c.summary.mbps.median / ceiling) * 100, 0)}% | ${fmtSummary(c.summary.cpuSeconds)} |`);
  }
  const sh = r.create?.find((c) => c.tool === 'shoal' && c.runs.length);
  if (sh) out.push('', `Target: Shoal ≥ 80% of SHA-1 × cores: ${fmt((sh.summary.mbps.median / ceiling) * 100, 0)}% ${mark(sh.summary.mbps.median / ceiling >= 0.8)}`);
  return out.join('\n');
}

const MEASURE_LABEL: Record<Measure, string> = {
  firstByte: 'First byte (GET, Range: bytes=0-)',
  firstFrame: 'First frame (`ffmpeg -i URL -frames:v 1`)',
  seek: 'First frame after a seek to the middle (`ffmpeg -ss <mid> -i URL`)',
};
const STREAM_TARGET_MS: Partial<Record<Measure, number>> = { firstByte: 300, seek: 500 };

export function streamMarkdown(r: ResultFile): string {
  const s = r.stream;
  if (!s) return r.notes.map((n) => `- ${n}`).join('\n');
  const out: string[] = [];
  const v = s.video;
  out.push(`**${v.seconds} s ${v.width}x${v.height} H.264 + AAC at ${fmt(v.bitrateBps / 1e6)} Mbit/s, ${fmtSize(v.pieceLength)} pieces; one Shoal seed (initial seeding off), upload shaped to ${s.seedRate} (${s.rateMultiple}× the bitrate, tbf burst ${s.seedBurst}); warm swarm: each measurement starts a fresh client, waits until it is connected to the seed, then ${s.settleMs} ms** — median (min–max) of ${s.runs} runs, milliseconds`);
  out.push('');
  const engines = [...new Set(s.cases.map((c) => c.engine))];
  const name = (e: string): string => displayName(e as 'shoal');
  for (const layout of LAYOUTS) {
    const bytes = v.bytes[layout];
    out.push(`*${layout === 'moov-end' ? 'moov at the end (ffmpeg\'s default MP4)' : '+faststart (moov first)'}, ${fmt(bytes / 1e6, 1)} MB*`);
    out.push('');
    out.push(`| Measure | ${engines.map(name).join(' | ')} | Shoal / WebTorrent | ffmpeg on the local file | Target |`);
    out.push(`|---|${engines.map(() => '---:').join('|')}|---:|---:|---|`);
    for (const m of MEASURES) {
      const cells = engines.map((e) => {
        const c = s.cases.find((x) => x.layout === layout && x.measure === m && x.engine === e);
        if (!c || c.summary.n === 0) return c?.failures.length ? `failed: ${failText(c.failures[0])}` : '–';
        return fmtSummary(c.summary, 0) + (c.failures.length ? ` ⚠ ${c.failures.length} failed` : '');
      });
      const sh = s.cases.find((x) => x.layout === layout && x.measure === m && x.engine === 'shoal')?.summary;
      const wt = s.cases.find((x) => x.layout === layout && x.measure === m && x.engine === 'webtorrent')?.summary;
      const ratio = sh?.n && wt?.n ? fmt(sh.median / wt.median) : '–';
      const local = s.local.find((x) => x.layout === layout && x.measure === m)?.summary;
      const target = STREAM_TARGET_MS[m];
      const tcell = target === undefined ? (sh?.n && wt?.n ? `ahead of WebTorrent ${mark(sh.median < wt.median)}` : '–')
        : `≤ ${target} ms ${sh?.n ? mark(sh.median <= target) : '–'}${sh?.n && wt?.n ? `, ahead ${mark(sh.median < wt.median)}` : ''}`;
      out.push(`| ${MEASURE_LABEL[m]} | ${cells.join(' | ')} | ${ratio} | ${local?.n ? fmtSummary(local, 0) : '–'} | ${tcell} |`);
    }
    const setup = engines.map((e) => {
      const xs = s.cases.filter((x) => x.layout === layout && x.engine === e).flatMap((x) => x.setupMs);
      return xs.length ? fmt(summarize(xs).median, 0) : '–';
    });
    out.push(`| *Client start → connected to the seed (not timed above)* | ${setup.join(' | ')} | | | |`);
    out.push('');
  }
  out.push('"ffmpeg on the local file" runs the same command on the seed\'s copy on disk, in the same namespace: what ffmpeg itself costs (process start, parsing, decoding one frame), the floor for the two frame rows.');
  for (const n of r.notes) out.push('', `- ${n}`);
  return out.join('\n');
}

/** Rebuilds bench/results/latest.md from the newest result of each scenario and copies it into bench/README.md. */
export async function writeLatest(): Promise<string> {
  const parts: string[] = ['# Latest benchmark results', '', 'Generated by `npm run bench`; each section comes from the newest result file of its scenario in this folder.', ''];
  const pair = latestOf('pair');
  const swarm = latestOf('swarm');
  const create = latestOf('create');
  const limits = latestOf('limits');
  const stream = latestOf('stream');
  const fleet = latestOf('fleet');
  const sect = (title: string, r: ResultFile, body: string): void => {
    parts.push(`## ${title}`, '', machineLine(r), '', body, '');
    for (const c of r.charts) parts.push(`![${title}](${c})`, '');
  };
  if (pair) sect('pair', pair, `${pairMarkdown(pair)}${pair.limits ? `\nMachine limits measured in the same run:\n\n${limitsMarkdown(pair.limits)}\n` : ''}`);
  if (swarm) sect('swarm', swarm, swarmMarkdown(swarm));
  if (create) sect('create', create, createMarkdown(create));
  if (stream) sect('stream', stream, streamMarkdown(stream));
  if (limits?.limits) sect('limits', limits, limitsMarkdown(limits.limits));
  if (fleet?.fleet) sect('fleet', fleet, fleetMarkdown(fleet.fleet));
  const md = parts.join('\n');
  await writeFile(join(RESULTS_DIR, 'latest.md'), md);
  if (existsSync(README)) {
    const readme = readFileSync(README, 'utf8');
    const a = readme.indexOf(MARK_START);
    const b = readme.indexOf(MARK_END);
    if (a >= 0 && b > a) {
      const body = md.replace(/^# Latest benchmark results\n/, '').replace(/^## /gm, '### ').replace(/\]\(([^)]+\.svg)\)/g, '](results/$1)');
      await writeFile(README, `${readme.slice(0, a + MARK_START.length)}\n${body}\n${readme.slice(b)}`);
    }
  }
  return join(RESULTS_DIR, 'latest.md');
}


/** Swarm results are grouped per downloader count, rate, origin (a BitTorrent seed or a web seed) and discovery. */
function swarmKey(s: SwarmResult): string {
  return `${s.peers}|${s.rate}|${s.origin ?? 'seed'}|${s.discovery ?? 'mesh'}`;
}
