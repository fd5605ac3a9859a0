import { open, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { createTorrent, type Metainfo } from '../../metainfo/index.js';
import { isMp4Video, mp4MoovPosition } from '../../stream/media.js';
import { ShoalError } from '../../util/errors.js';
import { formatBytes, parseSize, type Output } from '../output.js';

export interface CreateCommandOptions {
  tracker?: string[];
  webSeed?: string[];
  pieceLength?: string;
  private?: boolean;
  comment?: string;
  name?: string;
  output?: string;
}

export async function createCommand(path: string, opts: CreateCommandOptions, out: Output): Promise<{ file: string; infoHash: string }> {
  let pieceLength: number | undefined;
  if (opts.pieceLength !== undefined) {
    try {
      pieceLength = parseSize(opts.pieceLength);
    } catch (err) {
      throw new ShoalError('EUSAGE', `--piece-length: ${(err as Error).message}`);
    }
    if (pieceLength < 16384 || (pieceLength & (pieceLength - 1)) !== 0) {
      throw new ShoalError('EUSAGE', `--piece-length must be a power of two of at least 16 KiB, got ${opts.pieceLength}`);
    }
  }
  const abs = resolve(path);
  let started = false;
  const createOpts: Parameters<typeof createTorrent>[1] = {
    announce: (opts.tracker ?? []).map((t) => [t]),
    urlList: opts.webSeed ?? [],
    private: opts.private === true,
    onProgress: (hashed, total) => {
      if (!started) {
        started = true;
        out.startProgress(total, 'hashing {bar} {percentage}% | {value_h} of {total_h}');
      }
      out.updateProgress(hashed, { value_h: formatBytes(hashed), total_h: formatBytes(total) }, () => `hashing ${formatBytes(hashed)} of ${formatBytes(total)}`);
    },
    onSkip: (file, reason) => out.warn(`skipped ${file}: ${reason}`),
  };
  if (pieceLength !== undefined) createOpts.pieceLength = pieceLength;
  if (opts.comment !== undefined) createOpts.comment = opts.comment;
  if (opts.name !== undefined) createOpts.name = opts.name;
  const { torrent, meta } = await createTorrent(abs, createOpts);
  out.stopProgress();
  const file = resolve(opts.output ?? `${basename(abs)}.torrent`);
  await writeFile(file, torrent).catch((err: NodeJS.ErrnoException) => {
    throw new ShoalError('ESTORAGE', `cannot write ${file}: ${err.code ?? err.message}`);
  });
  out.event('created', { file, infoHash: meta.infoHashHex, name: meta.name, length: meta.length, pieceLength: meta.pieceLength, pieces: meta.pieceCount },
    `created ${file}\n  info-hash ${meta.infoHashHex}\n  ${meta.files.length} file(s), ${formatBytes(meta.length)}, ${meta.pieceCount} pieces of ${formatBytes(meta.pieceLength)}`);
  await warnMoovAtEnd(meta, abs, out);
  return { file, infoHash: meta.infoHashHex };
}

/** Streaming players must fetch the end of such files before the first frame: say how to fix them. */
async function warnMoovAtEnd(meta: Metainfo, root: string, out: Output): Promise<void> {
  for (const f of meta.files) {
    if (f.padding || !isMp4Video(f.path[f.path.length - 1]!)) continue;
    const onDisk = meta.multiFile ? join(root, ...f.path) : root;
    const shown = meta.multiFile ? f.path.join('/') : basename(root);
    let position;
    try {
      const fh = await open(onDisk, 'r');
      try { position = await mp4MoovPosition(fh, f.length); } finally { await fh.close(); }
    } catch {
      continue; // advice only: a file that vanished after hashing is not this check's business
    }
    if (position === 'end') {
      out.warn(`${shown}: moov atom at the end; players must download the end first. ` +
        'Re-encode with `ffmpeg -i in.mp4 -c copy -movflags +faststart out.mp4`');
    }
  }
}
