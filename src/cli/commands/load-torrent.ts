import { readFile } from 'node:fs/promises';
import { parseTorrent, type Metainfo } from '../../metainfo/index.js';
import { isShoalError, ShoalError } from '../../util/errors.js';

const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EISDIR: 'it is a folder, not a .torrent file',
  EACCES: 'permission denied',
};

/**
 * Reads and parses a .torrent, naming the file in every error: "bencode: empty input at byte 0"
 * alone does not say which of a script's many arguments was wrong.
 */
export async function loadTorrent(file: string): Promise<Metainfo> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    throw new ShoalError('EUSAGE', `cannot read torrent file ${file}: ${READ_ERRORS[code] ?? (code || (err as Error).message)}`);
  }
  try {
    return parseTorrent(bytes);
  } catch (err) {
    if (isShoalError(err)) throw new ShoalError(err.code, `${file}: ${err.message}`, { cause: err });
    throw err;
  }
}
