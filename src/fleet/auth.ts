import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { ShoalError } from '../util/errors.js';

/** Tokens from a file: one a line, blank lines and # comments ignored. */
export async function readTokens(file: string): Promise<string[]> {
  let text: string;
  try { text = await readFile(file, 'utf8'); } catch (e) {
    throw new ShoalError('EUSAGE', `cannot read token file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const tokens = text.split(/\r?\n/).map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
  if (tokens.length === 0) throw new ShoalError('EUSAGE', `${file}: no token found (one token a line)`);
  const bad = tokens.find((t) => !/^[\x21-\x7e]{16,256}$/.test(t));
  if (bad !== undefined) throw new ShoalError('EUSAGE', `${file}: a token must be 16-256 printable characters without spaces`);
  return tokens;
}

/** The first token of a file, for clients (agent, publish). */
export async function readToken(file: string): Promise<string> {
  return (await readTokens(file))[0]!;
}

/** Creates a token file with one random token (mode 0600) if none exists; returns its tokens. */
export async function ensureTokenFile(file: string): Promise<string[]> {
  try { return await readTokens(file); } catch { /* create it */ }
  await writeFile(file, randomBytes(24).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' }).catch(() => undefined);
  return readTokens(file);
}

/** Compares digests so neither the length nor the bytes of a guess leak through timing. */
export class TokenCheck {
  private readonly digests: Buffer[];
  constructor(tokens: string[]) { this.digests = tokens.map(digest); }

  allows(req: IncomingMessage): boolean {
    const h = req.headers.authorization;
    if (typeof h !== 'string' || !h.startsWith('Bearer ')) return false;
    const d = digest(h.slice(7).trim());
    let ok = false;
    for (const x of this.digests) ok = timingSafeEqual(x, d) || ok;
    return ok;
  }
}

function digest(s: string): Buffer { return createHash('sha256').update(s).digest(); }
