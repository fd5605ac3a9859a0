import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { generateKeyPair } from '../../fleet/signing.js';
import { ShoalError } from '../../util/errors.js';
import { EXIT, type Output } from '../output.js';

/** `shoal keygen -o FILE`: an Ed25519 private key (PEM, mode 0600) in FILE and its public key in FILE.pub. */
export async function keygenCommand(opts: { output?: string; force?: boolean }, out: Output): Promise<number> {
  if (!opts.output) throw new ShoalError('EUSAGE', '-o FILE is required (where the private key goes)');
  const file = resolve(opts.output);
  const { privatePem, publicKey } = generateKeyPair();
  try {
    await writeFile(file, privatePem, { mode: 0o600, flag: opts.force ? 'w' : 'wx' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ShoalError('EUSAGE', code === 'EEXIST' ? `${file} exists; not overwriting a key (use --force)` : `cannot write ${file}: ${code ?? (e as Error).message}`);
  }
  await writeFile(`${file}.pub`, publicKey + '\n', { flag: opts.force ? 'w' : 'wx' }).catch(() => undefined);
  out.event('key', { privateKey: file, publicKeyFile: `${file}.pub`, publicKey },
    `private key: ${file} (keep it secret; publish with --key ${file})\npublic key:  ${publicKey}\n  (also in ${file}.pub; agents take it as --trust ${publicKey})`);
  return EXIT.ok;
}
