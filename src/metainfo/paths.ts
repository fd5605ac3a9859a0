import path from 'node:path';
import { ShoalError } from '../util/errors.js';

// Reserved device names on Windows; they stay reserved with any extension ("CON.txt") or trailing spaces/dots.
const RESERVED = /^(con|prn|aux|nul|com[1-9]|lpt[1-9]|conin\$|conout\$)$/i;
const MAX_COMPONENT_BYTES = 255; // NAME_MAX on common filesystems

function shown(parts: string[]): string {
  return JSON.stringify(parts.join('/')).replace(/\\u0000/g, '\\0');
}

/** Why a single path component is unusable, or undefined if it is fine. */
export function componentProblem(part: string): string | undefined {
  if (part === '') return 'has an empty component';
  if (part === '.' || part === '..') return 'escapes the download folder';
  if (part.includes('/') || part.includes('\\')) return 'has a path separator inside a component';
  if (part.includes('\0')) return 'contains a NUL byte';
  if (part.includes(':')) return 'contains ":" (drive letter or stream name)';
  const base = part.split('.')[0]!.replace(/[ .]+$/, '');
  if (RESERVED.test(base)) return `uses the reserved name "${base}"`;
  if (Buffer.byteLength(part, 'utf8') > MAX_COMPONENT_BYTES) return `has a component longer than ${MAX_COMPONENT_BYTES} bytes`;
  return undefined;
}

/**
 * Shoal keeps resume data and part files in `<dir>/.shoal/`. A torrent named `.shoal` would write its files
 * into that folder (a multi-file one could replace another torrent's `<infohash>.resume`), so the name is
 * reserved. Compared case-insensitively and without trailing dots/spaces: on macOS and Windows those spell
 * the same folder.
 */
export const STATE_DIR_NAME = '.shoal';

export function checkTorrentName(name: string): void {
  checkPathComponents([name], 'name');
  if (name.replace(/[ .]+$/, '').toLowerCase() === STATE_DIR_NAME) {
    throw new ShoalError('EPATH', `torrent: name ${JSON.stringify(name)} is reserved: Shoal keeps resume data in the "${STATE_DIR_NAME}" folder of the download directory`);
  }
}

/** Validate path components with a custom noun for the message ("file path", "name", ...). */
export function checkPathComponents(parts: string[], noun = 'file path'): void {
  if (parts.length === 0) throw new ShoalError('EPATH', `torrent: ${noun} is empty`);
  for (const part of parts) {
    const problem = componentProblem(part);
    if (problem !== undefined) throw new ShoalError('EPATH', `torrent: ${noun} ${shown(parts)} ${problem}`);
  }
}

/**
 * Reject any path a torrent could use to write outside its folder or that some OS cannot create:
 * empty/'.'/'..' components, separators, NUL, ':', Windows reserved names, over-long components.
 * Absolute paths are caught by the empty-first-component and separator rules.
 */
export function validatePathComponents(parts: string[]): void {
  checkPathComponents(parts);
}

/** path.resolve(root, ...parts), after validation and a final check that the result really is inside root. */
export function resolveInside(root: string, parts: string[]): string {
  checkPathComponents(parts);
  const base = path.resolve(root);
  const full = path.resolve(base, ...parts);
  const rel = path.relative(base, full);
  if (rel === '' || rel === '..' || rel.startsWith('..' + path.sep) || path.isAbsolute(rel)) {
    throw new ShoalError('EPATH', `torrent: file path ${shown(parts)} escapes the download folder`);
  }
  return full;
}
