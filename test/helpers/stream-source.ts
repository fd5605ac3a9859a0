import { createReadStream, type ReadStream } from 'node:fs';
import { request } from 'node:http';
import type { StreamFile, StreamSource } from '../../src/stream/server.js';

/** A StreamSource over real files on disk: what the engine's readers will be once pieces are verified. */
export class DiskSource implements StreamSource {
  readonly files: StreamFile[] = [];
  /** Every reader handed out, in order, so tests can see what the server asked for and whether it was destroyed. */
  readonly opened: Array<{ index: number; start: number; end: number; stream: ReadStream }> = [];
  private readonly disk = new Map<number, string>();

  constructor(readonly name: string, files: Array<{ index: number; path: string; length: number; disk: string }>, readonly id?: string) {
    for (const f of files) {
      this.files.push({ index: f.index, path: f.path, length: f.length });
      this.disk.set(f.index, f.disk);
    }
  }

  createReadStream(index: number, range: { start: number; end: number }): ReadStream {
    const stream = createReadStream(this.disk.get(index)!, { start: range.start, end: range.end });
    this.opened.push({ index, ...range, stream });
    return stream;
  }
}

export interface HttpResult { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

/** One request on a fresh connection (no keep-alive pool to outlive the test), bounded by timeoutMs. */
export function httpRequest(url: string, opts: { method?: string; headers?: Record<string, string> } = {}, timeoutMs = 10_000): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
