// Hand-made SVG charts: throughput bars with min–max whiskers (pair) and completion-time CDFs (swarm).
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

export interface Bar { label: string; group: string; median: number; min: number; max: number; highlight?: boolean }

export function barChart(title: string, unit: string, bars: Bar[]): string {
  const rowH = 26;
  const left = 250;
  const width = 860;
  const plotW = width - left - 90;
  const groups = [...new Set(bars.map((b) => b.group))];
  const rows = bars.length + groups.length;
  const height = 60 + rows * rowH + 40;
  const xmax = niceMax(Math.max(...bars.map((b) => (Number.isFinite(b.max) ? b.max : 0))));
  const x = (v: number): number => left + (v / xmax) * plotW;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  const top = 44;
  const bottom = top + rows * rowH;
  for (let i = 0; i <= 5; i++) {
    const v = (xmax * i) / 5;
    out.push(`<line x1="${x(v)}" y1="${top}" x2="${x(v)}" y2="${bottom}" stroke="#ddd"/>`);
    out.push(`<text x="${x(v)}" y="${bottom + 16}" text-anchor="middle" fill="#555">${+v.toFixed(1)}</text>`);
  }
  out.push(`<text x="${left + plotW / 2}" y="${bottom + 34}" text-anchor="middle" fill="#333">${esc(unit)} (median, whiskers min–max)</text>`);
  let y = top;
  for (const g of groups) {
    out.push(`<text x="8" y="${y + 17}" font-weight="bold">${esc(g)}</text>`);
    y += rowH;
    for (const b of bars.filter((bb) => bb.group === g)) {
      const fill = b.highlight ? '#1f77b4' : '#9ab';
      out.push(`<text x="${left - 8}" y="${y + 17}" text-anchor="end">${esc(b.label)}</text>`);
      if (Number.isFinite(b.median)) {
        out.push(`<rect x="${left}" y="${y + 5}" width="${Math.max(0, x(b.median) - left)}" height="${rowH - 10}" fill="${fill}"/>`);
        const cy = y + rowH / 2;
        out.push(`<line x1="${x(b.min)}" y1="${cy}" x2="${x(b.max)}" y2="${cy}" stroke="#222"/>`);
        out.push(`<line x1="${x(b.min)}" y1="${cy - 5}" x2="${x(b.min)}" y2="${cy + 5}" stroke="#222"/>`);
        out.push(`<line x1="${x(b.max)}" y1="${cy - 5}" x2="${x(b.max)}" y2="${cy + 5}" stroke="#222"/>`);
        out.push(`<text x="${x(b.max) + 6}" y="${y + 17}" fill="#333">${b.median.toFixed(0)}</text>`);
      } else {
        out.push(`<text x="${left + 4}" y="${y + 17}" fill="#a00">failed</text>`);
      }
      y += rowH;
    }
  }
  out.push('</svg>');
  return out.join('\n');
}

export interface Cdf { label: string; times: number[] }

export function cdfChart(title: string, series: Cdf[], floor: number, floorLabel: string): string {
  const width = 860;
  const height = 460;
  const left = 60, right = 200, top = 44, bottom = 60;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const tmax = niceMax(Math.max(floor, ...series.flatMap((s) => s.times)) * 1.05);
  const x = (t: number): number => left + (t / tmax) * plotW;
  const y = (f: number): number => top + (1 - f) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${(left + plotW / 2)}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const t = (tmax * i) / 5;
    out.push(`<line x1="${x(t)}" y1="${top}" x2="${x(t)}" y2="${top + plotH}" stroke="#ddd"/>`);
    out.push(`<text x="${x(t)}" y="${top + plotH + 16}" text-anchor="middle" fill="#555">${+t.toFixed(1)}</text>`);
    const f = i / 5;
    out.push(`<line x1="${left}" y1="${y(f)}" x2="${left + plotW}" y2="${y(f)}" stroke="#eee"/>`);
    out.push(`<text x="${left - 6}" y="${y(f) + 4}" text-anchor="end" fill="#555">${f.toFixed(1)}</text>`);
  }
  out.push(`<text x="${left + plotW / 2}" y="${height - 18}" text-anchor="middle">seconds since start</text>`);
  out.push(`<text x="16" y="${top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${top + plotH / 2})">fraction of downloaders done</text>`);
  out.push(`<line x1="${x(floor)}" y1="${top}" x2="${x(floor)}" y2="${top + plotH}" stroke="#000" stroke-dasharray="6 4"/>`);
  out.push(`<text x="${x(floor) + 4}" y="${top + 14}" fill="#000">${esc(floorLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length]!;
    const ts = [...s.times].sort((a, b) => a - b);
    let d = `M ${x(0)} ${y(0)}`;
    ts.forEach((t, k) => { d += ` L ${x(t)} ${y(k / ts.length)} L ${x(t)} ${y((k + 1) / ts.length)}`; });
    if (ts.length) out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"/>`);
    const ly = top + 10 + i * 22;
    out.push(`<line x1="${left + plotW + 16}" y1="${ly}" x2="${left + plotW + 40}" y2="${ly}" stroke="${c}" stroke-width="3"/>`);
    out.push(`<text x="${left + plotW + 46}" y="${ly + 4}">${esc(s.label)}${ts.length ? '' : ' (failed)'}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}
