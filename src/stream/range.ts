/**
 * HTTP `Range` requests (RFC 9110 §14) for one representation of known size.
 *
 * Only single byte ranges are served as 206. Media players (browsers, ffmpeg, VLC, mpv) only ever send one
 * range, so multipart/byteranges would be code that no player exercises. A multi-range request whose ranges
 * overlap or touch is coalesced into its one span (RFC 9110 §15.3.7 lets a server coalesce); otherwise the
 * Range header is ignored and the whole file is sent with 200, which RFC 9110 §14.2 allows and every client
 * must handle. A 416 would be wrong there: 416 means "none of the ranges overlap the file".
 */

export type RangeResult =
  /** Send the whole file with 200: no Range, a malformed one, another unit, or one we choose to ignore. */
  | { kind: 'full' }
  /** Send bytes [start, end] (inclusive) with 206. */
  | { kind: 'partial'; start: number; end: number }
  /** Send 416 with `Content-Range: bytes *\/size`. */
  | { kind: 'unsatisfiable' };

/** More ranges than this in one header is a broken client or a denial-of-service attempt: ignored. */
export const MAX_RANGES = 64;

const FULL: RangeResult = { kind: 'full' };
const UNSATISFIABLE: RangeResult = { kind: 'unsatisfiable' };
const DIGITS = /^[0-9]+$/;
// Per RFC 9110 §5.6.1 a list may contain empty elements and optional whitespace around commas.
const OWS = /^[ \t]+|[ \t]+$/g;

interface Span { start: number; end: number }

/**
 * What to send for a request with this `Range` header for a representation of `size` bytes.
 * Never throws: anything malformed is ignored (full response), as RFC 9110 §14.2 requires.
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return FULL;
  const eq = header.indexOf('=');
  if (eq < 0) return FULL;
  // Range units are case-insensitive tokens; no whitespace is allowed around '='.
  if (header.slice(0, eq).toLowerCase() !== 'bytes') return FULL;
  const specs = header.slice(eq + 1).split(',');
  if (specs.length > MAX_RANGES * 2) return FULL;

  const satisfiable: Span[] = [];
  let count = 0;
  let suffixOnEmpty = false;
  for (const raw of specs) {
    const spec = raw.replace(OWS, '');
    if (spec === '') continue;
    if (++count > MAX_RANGES) return FULL;
    const dash = spec.indexOf('-');
    if (dash < 0) return FULL;
    const first = spec.slice(0, dash);
    const last = spec.slice(dash + 1);
    if (first === '') {
      // suffix-range: the last n bytes.
      if (!DIGITS.test(last)) return FULL;
      const n = Number(last);
      if (n === 0) continue; // a zero suffix-length is unsatisfiable
      if (size === 0) { suffixOnEmpty = true; continue; }
      satisfiable.push({ start: Math.max(0, size - n), end: size - 1 });
      continue;
    }
    if (!DIGITS.test(first)) return FULL;
    const start = Number(first);
    let end = Infinity;
    if (last !== '') {
      if (!DIGITS.test(last)) return FULL;
      end = Number(last);
      if (end < start) return FULL; // invalid range-spec: the whole header is invalid
    }
    if (start >= size) continue;
    satisfiable.push({ start, end: Math.min(end, size - 1) });
  }
  if (count === 0) return FULL;
  if (satisfiable.length === 0) {
    // A non-zero suffix of an empty file is satisfiable but has no bytes to describe in a Content-Range.
    return suffixOnEmpty ? FULL : UNSATISFIABLE;
  }
  const span = coalesce(satisfiable);
  return span === null ? FULL : { kind: 'partial', start: span.start, end: span.end };
}

/** The single span covering all ranges when they overlap or touch, else null. */
function coalesce(spans: Span[]): Span | null {
  if (spans.length === 1) return spans[0]!;
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  let { start, end } = sorted[0]!;
  for (let i = 1; i < sorted.length; i++) {
    const s = sorted[i]!;
    if (s.start > end + 1) return null;
    if (s.end > end) end = s.end;
  }
  return { start, end };
}

/** The `Content-Range` value for a 206 (bytes start-end/size) or, without a range, for a 416 (bytes *\/size). */
export function contentRange(size: number, range?: { start: number; end: number }): string {
  return range === undefined ? `bytes */${size}` : `bytes ${range.start}-${range.end}/${size}`;
}
