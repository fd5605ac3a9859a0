import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { ShoalError } from '../util/errors.js';
import type { Manifest } from './types.js';

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface KeyPair {
  privatePem: string;
  /** The raw 32-byte public key in base64: what `--trust` takes. */
  publicKey: string;
}

export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey: rawPublicKey(publicKey) };
}

function rawPublicKey(k: KeyObject): string {
  const der = k.export({ type: 'spki', format: 'der' });
  return der.subarray(der.length - 32).toString('base64');
}

export function loadPrivateKey(pem: string, source = 'key'): KeyObject {
  let key: KeyObject;
  try { key = createPrivateKey(pem); } catch (e) {
    throw new ShoalError('EUSAGE', `${source}: not a private key in PEM form (${(e as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new ShoalError('EUSAGE', `${source}: an Ed25519 key is needed (make one with shoal keygen), got ${key.asymmetricKeyType}`);
  return key;
}

export function publicKeyOf(priv: KeyObject): string {
  return rawPublicKey(createPublicKey(priv));
}

/**
 * `--trust` value: base64 of the raw 32-byte key (as keygen prints it), or a file holding that or a PEM public key.
 */
export function parsePublicKey(text: string): KeyObject {
  let t = text.trim();
  if (existsSync(t)) t = readFileSync(t, 'utf8').trim();
  try {
    if (t.includes('BEGIN')) {
      const k = createPublicKey(t.includes('PRIVATE') ? createPrivateKey(t) : t);
      if (k.asymmetricKeyType === 'ed25519') return k;
    } else {
      const raw = Buffer.from(t.replace(/^ed25519:/, ''), 'base64');
      if (raw.length === 32) return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
    }
  } catch { /* fall through to the error below */ }
  throw new ShoalError('EUSAGE', `--trust: "${text.slice(0, 80)}" is neither an Ed25519 public key (base64 of 32 bytes, as shoal keygen prints) nor a file holding one`);
}

export function publicKeyText(k: KeyObject): string { return rawPublicKey(k); }

export function signManifest(manifestJson: string, key: KeyObject): string {
  return sign(null, Buffer.from(manifestJson, 'utf8'), key).toString('base64');
}

export function verifyManifest(manifestJson: string, signature: string | undefined, key: KeyObject): boolean {
  if (!signature) return false;
  const sig = Buffer.from(signature, 'base64');
  if (sig.length !== 64) return false;
  try { return verify(null, Buffer.from(manifestJson, 'utf8'), key, sig); } catch { return false; }
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Channel and version names become folder names on every agent: no separators, no dot-dot, bounded. */
export function checkName(kind: 'channel' | 'version', v: unknown): string {
  if (typeof v !== 'string' || !NAME_RE.test(v) || v === 'current') {
    throw new ShoalError('EUSAGE', `${kind} "${String(v).slice(0, 70)}" must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit (and not "current")`);
  }
  return v;
}

/** Parses and checks a manifest's JSON text. */
export function parseManifest(text: unknown): Manifest {
  if (typeof text !== 'string' || text.length > 4096) throw new ShoalError('EUSAGE', 'manifest must be a JSON string of at most 4096 characters');
  let m: unknown;
  try { m = JSON.parse(text); } catch { throw new ShoalError('EUSAGE', 'manifest is not valid JSON'); }
  const o = m as Record<string, unknown>;
  if (!o || typeof o !== 'object') throw new ShoalError('EUSAGE', 'manifest must be a JSON object');
  checkName('channel', o['channel']);
  checkName('version', o['version']);
  if (typeof o['infoHash'] !== 'string' || !/^[0-9a-f]{40}$/.test(o['infoHash'])) throw new ShoalError('EUSAGE', 'manifest.infoHash must be 40 lower-case hex characters');
  if (typeof o['time'] !== 'string' || Number.isNaN(Date.parse(o['time']))) throw new ShoalError('EUSAGE', 'manifest.time must be an ISO date');
  if (typeof o['size'] !== 'number' || !(o['size'] >= 0)) throw new ShoalError('EUSAGE', 'manifest.size must be a number');
  if (typeof o['name'] !== 'string') throw new ShoalError('EUSAGE', 'manifest.name must be a string');
  return o as unknown as Manifest;
}
