/** Which releases to delete to respect `--keep N` per channel and `--max-disk`: pure, so it is easy to test. */

export interface HeldRelease {
  channel: string;
  version: string;
  seq: number;
  size: number;
  /** `current` points at it. */
  current: boolean;
  /** Being downloaded (or about to be). */
  active: boolean;
}

/**
 * Returns the releases to delete, oldest first: beyond the newest `keep` of each channel, then (oldest first across
 * channels) until `incoming` more bytes fit under `maxDisk`. `current` and active releases are never chosen.
 * `fits` is false when even deleting everything allowed leaves too little room (then only the `keep` excess goes).
 */
export function planPrune(held: HeldRelease[], keep: number, maxDisk: number | undefined, incoming = 0): { remove: HeldRelease[]; fits: boolean } {
  const remove = new Set<HeldRelease>();
  const byChannel = new Map<string, HeldRelease[]>();
  for (const h of held) byChannel.set(h.channel, [...(byChannel.get(h.channel) ?? []), h]);
  for (const list of byChannel.values()) {
    list.sort((a, b) => b.seq - a.seq);
    // The newest `keep` stay, counting current and active ones among them.
    list.slice(Math.max(0, keep)).forEach((h) => { if (!h.current && !h.active) remove.add(h); });
  }
  let used = held.filter((h) => !remove.has(h)).reduce((n, h) => n + h.size, 0);
  if (maxDisk !== undefined && used + incoming > maxDisk) {
    const extra = new Set<HeldRelease>();
    const candidates = held.filter((h) => !remove.has(h) && !h.current && !h.active).sort((a, b) => a.seq - b.seq);
    for (const h of candidates) {
      if (used + incoming <= maxDisk) break;
      extra.add(h);
      used -= h.size;
    }
    // Deleting releases is only worth it when the new one then fits.
    if (used + incoming <= maxDisk) for (const h of extra) remove.add(h);
    else return { remove: [...remove].sort((a, b) => a.seq - b.seq), fits: false };
  }
  return { remove: [...remove].sort((a, b) => a.seq - b.seq), fits: true };
}
