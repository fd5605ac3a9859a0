/**
 * The controller's dashboard: one self-contained page (no framework, no CDN, nothing fetched but this controller's
 * own read-only API). It follows /api/events and re-reads /api/channels when something changes. Every value from
 * agents is inserted as text, never as HTML.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shoal fleet</title>
<link rel="icon" href="data:,">
<style>
:root { --bg:#f6f7f9; --card:#fff; --fg:#1d2330; --muted:#6b7385; --done:#1f9d55; --prog:#2f6fde; --fail:#d64545; --off:#9aa1ad; --wait:#d8dce3; --line:#e3e6eb; }
@media (prefers-color-scheme: dark) { :root { --bg:#11141a; --card:#1a1f28; --fg:#e6e9ef; --muted:#98a0b0; --line:#2a303c; --wait:#3a4150; } }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; align-items:center; gap:.6rem; padding:.8rem 1rem; border-bottom:1px solid var(--line); background:var(--card); position:sticky; top:0; z-index:1; }
header h1 { font-size:1.1rem; margin:0; flex:1; }
#live { font-size:.85rem; color:var(--muted); }
#live::before { content:""; display:inline-block; width:.6rem; height:.6rem; border-radius:50%; background:var(--off); margin-right:.35rem; vertical-align:middle; }
#live.on::before { background:var(--done); }
main { padding:1rem; display:grid; gap:1rem; grid-template-columns:repeat(auto-fill, minmax(min(100%, 30rem), 1fr)); }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:1rem; min-width:0; }
.card h2 { margin:0 0 .2rem; font-size:1.05rem; display:flex; gap:.5rem; align-items:baseline; flex-wrap:wrap; }
.muted { color:var(--muted); font-size:.85rem; }
.bar { display:flex; height:14px; border-radius:7px; overflow:hidden; background:var(--wait); margin:.6rem 0 .3rem; }
.bar span { display:block; height:100%; }
.done { background:var(--done); } .in-progress { background:var(--prog); } .failed { background:var(--fail); } .offline { background:var(--off); } .waiting { background:var(--wait); }
.counts { display:flex; flex-wrap:wrap; gap:.3rem 1rem; font-size:.9rem; }
.counts b { font-variant-numeric:tabular-nums; }
h3 { font-size:.8rem; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); margin:1rem 0 .35rem; }
svg.chart { width:100%; height:120px; display:block; }
svg.chart .axis { stroke:var(--line); } svg.chart .step { fill:none; stroke:var(--done); stroke-width:2; } svg.chart .floor { stroke:var(--fail); stroke-dasharray:4 3; }
svg.chart text { fill:var(--muted); font-size:10px; }
table { border-collapse:collapse; width:100%; font-size:.88rem; }
td, th { padding:.2rem .3rem; text-align:left; border-bottom:1px solid var(--line); }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
.mini { height:8px; border-radius:4px; background:var(--wait); overflow:hidden; min-width:4rem; } .mini span { display:block; height:100%; background:var(--done); }
.hosts { display:grid; grid-template-columns:repeat(auto-fill, minmax(6.5rem, 1fr)); gap:.35rem; }
.host { border-radius:6px; padding:.3rem .4rem; font-size:.78rem; color:#fff; overflow:hidden; white-space:nowrap; text-overflow:ellipsis; }
.host.waiting { color:var(--fg); }
.reason { font-weight:600; }
.empty { color:var(--muted); padding:2rem; text-align:center; }
</style>
</head>
<body>
<header><h1>Shoal fleet</h1><span id="live">connecting…</span></header>
<main id="channels"><div class="empty">Loading…</div></main>
<script>
"use strict";
const $main = document.getElementById('channels');
const $live = document.getElementById('live');
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === 'class') e.className = v; else if (k === 'style') e.style.cssText = v; else e.setAttribute(k, v); }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
function svgEl(tag, attrs) { const e = document.createElementNS('http://www.w3.org/2000/svg', tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v)); return e; }
function bytes(n) { const u = ['B','KiB','MiB','GiB','TiB']; let i = 0; while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; } return (i ? n.toFixed(1) : n) + ' ' + u[i]; }
function dur(s) { if (s === undefined || s === null || !isFinite(s)) return '–'; if (s < 60) return s.toFixed(1) + ' s'; const m = Math.floor(s / 60); return m + ' min ' + Math.round(s % 60) + ' s'; }
function ago(ms) { const s = (Date.now() - ms) / 1000; return s < 90 ? Math.round(s) + ' s ago' : Math.round(s / 60) + ' min ago'; }
const REASONS = { 'no-peers':'no peers', slow:'slow', 'disk-full':'disk full', 'hook-failed':'hook failed', offline:'offline', untrusted:'bad signature', error:'error' };

function chart(v) {
  const svg = svgEl('svg', { class:'chart', viewBox:'0 0 300 120', preserveAspectRatio:'none', role:'img' });
  const n = v.summary.subscribed || 1;
  const times = v.doneTimes;
  const floor = v.floor ? v.floor.seconds : 0;
  const tmax = Math.max(1, times.length ? times[times.length - 1] : 0, floor, v.latest && !v.completionSeconds ? (Date.now() - v.latest.createdAt) / 1000 : 0) * 1.05;
  const x = (t) => 20 + (t / tmax) * 275, y = (k) => 105 - (k / n) * 95;
  svg.append(svgEl('line', { class:'axis', x1:20, y1:105, x2:295, y2:105 }), svgEl('line', { class:'axis', x1:20, y1:10, x2:20, y2:105 }));
  let d = 'M' + x(0) + ' ' + y(0);
  times.forEach((t, i) => { d += ' H' + x(t).toFixed(1) + ' V' + y(i + 1).toFixed(1); });
  svg.append(svgEl('path', { class:'step', d }));
  if (floor) { svg.append(svgEl('line', { class:'floor', x1:x(floor), y1:10, x2:x(floor), y2:105 })); const t = svgEl('text', { x:Math.min(x(floor) + 3, 250), y:20 }); t.textContent = 'floor'; svg.append(t); }
  const l1 = svgEl('text', { x:22, y:118 }); l1.textContent = '0'; const l2 = svgEl('text', { x:262, y:118 }); l2.textContent = dur(tmax);
  const l3 = svgEl('text', { x:0, y:14 }); l3.textContent = String(v.summary.subscribed);
  svg.append(l1, l2, l3);
  const title = svgEl('title', {}); title.textContent = 'hosts done over time since the release was registered'; svg.append(title);
  return svg;
}

function card(v) {
  const s = v.summary, n = s.subscribed || 1;
  const c = el('section', { class:'card', 'data-channel': v.name });
  const rel = v.latest;
  c.append(el('h2', {}, v.name, el('span', { class:'muted' }, rel ? rel.version + ' · ' + bytes(rel.size) + (rel.signature ? ' · signed' : '') + ' · ' + ago(rel.createdAt) : 'no release yet')));
  const bar = el('div', { class:'bar', role:'img', 'aria-label': s.done + ' of ' + s.subscribed + ' hosts done' });
  for (const [k, cls] of [['done','done'],['inProgress','in-progress'],['failed','failed'],['offline','offline']]) if (s[k]) bar.append(el('span', { class:cls, style:'width:' + (100 * s[k] / n) + '%' }));
  c.append(bar);
  c.append(el('div', { class:'counts' },
    el('span', {}, el('b', { class:'n-done' }, s.done), '/' + s.subscribed + ' done'),
    el('span', {}, el('b', {}, s.inProgress), ' in progress'), el('span', {}, el('b', {}, s.failed), ' failed'),
    el('span', {}, el('b', {}, s.offline), ' offline'), s.waiting ? el('span', {}, el('b', {}, s.waiting), ' waiting') : null));
  const timing = v.completionSeconds !== undefined ? 'Completed in ' + dur(v.completionSeconds) : rel ? 'Running for ' + dur((Date.now() - rel.createdAt) / 1000) : '';
  const fl = v.floor ? ' · floor ≈ ' + dur(v.floor.seconds) + ' (Kumar–Ross, from reported peak rates: an estimate)' : '';
  if (rel) c.append(el('div', { class:'muted', style:'margin-top:.3rem' }, timing + fl));
  if (rel) { c.append(el('h3', {}, 'Hosts done over time')); c.append(chart(v)); }
  const b = v.bytes, tot = b.fromPeers + b.fromOrigin + b.fromWebSeeds;
  if (tot > 0) {
    c.append(el('h3', {}, 'Where the bytes came from'));
    const bb = el('div', { class:'bar' });
    bb.append(el('span', { class:'done', style:'width:' + (100 * b.fromPeers / tot) + '%' }), el('span', { class:'in-progress', style:'width:' + (100 * b.fromOrigin / tot) + '%' }));
    if (b.fromWebSeeds) bb.append(el('span', { class:'offline', style:'width:' + (100 * b.fromWebSeeds / tot) + '%' }));
    c.append(bb, el('div', { class:'muted' }, 'peers ' + bytes(b.fromPeers) + ' · origin ' + bytes(b.fromOrigin) + (b.fromWebSeeds ? ' · web seeds ' + bytes(b.fromWebSeeds) : '') +
      (b.originSent !== undefined && rel ? ' · origin sent ' + bytes(b.originSent) + ' = ' + (b.originSent / rel.size).toFixed(2) + ' copies' : '')));
  }
  if (v.zones.length > 1 || (v.zones[0] && v.zones[0].zone !== '-')) {
    c.append(el('h3', {}, 'Zones and racks'));
    const t = el('table', {}, el('tr', {}, el('th', {}, 'zone'), el('th', {}, 'rack'), el('th', {}, 'done'), el('th', {}, '')));
    for (const z of v.zones) t.append(el('tr', {}, el('td', {}, z.zone), el('td', {}, z.rack || '–'), el('td', { class:'num' }, z.done + '/' + z.total),
      el('td', {}, el('div', { class:'mini' }, el('span', { style:'width:' + (100 * z.done / Math.max(1, z.total)) + '%' })))));
    c.append(t);
  }
  const strag = v.hosts.filter((h) => h.state !== 'done' && rel);
  if (strag.length) {
    c.append(el('h3', {}, 'Not done yet'));
    const t = el('table', { class:'stragglers' });
    for (const h of strag.slice(0, 50)) t.append(el('tr', {}, el('td', {}, h.host), el('td', {}, h.state), el('td', { class:'num' }, Math.round(h.progress * 100) + '%'),
      el('td', { class:'reason' }, h.reason ? REASONS[h.reason] || h.reason : ''), el('td', { class:'muted' }, h.error || '')));
    c.append(t);
  }
  c.append(el('h3', {}, 'Hosts (' + v.hosts.length + ')'));
  const g = el('div', { class:'hosts' });
  for (const h of v.hosts) g.append(el('div', { class:'host ' + h.state, 'data-host': h.host, 'data-state': h.state,
    title: h.host + (h.zone ? ' · ' + h.zone + (h.rack ? '/' + h.rack : '') : '') + ' · ' + h.state + (h.current ? ' · current ' + h.current : '') + (h.reason ? ' · ' + (REASONS[h.reason] || h.reason) : '') },
    h.host + ' ' + (h.state === 'in-progress' ? Math.round(h.progress * 100) + '%' : h.state === 'done' ? '✓' : '')));
  c.append(g);
  return c;
}

let pending = false, lastLoad = 0;
async function load() {
  pending = false; lastLoad = Date.now();
  try {
    const r = await fetch('/api/channels', { cache:'no-store' });
    const views = await r.json();
    $main.replaceChildren(...(views.length ? views.map(card) : [el('div', { class:'empty' }, 'No channels yet: run shoal publish.')]));
  } catch (e) { $live.textContent = 'cannot load: ' + e.message; }
}
function soon() { if (pending) return; pending = true; setTimeout(load, Math.max(0, 400 - (Date.now() - lastLoad))); }
function connect() {
  const es = new EventSource('/api/events');
  es.addEventListener('open', () => { $live.className = 'on'; $live.textContent = 'live'; soon(); });
  es.addEventListener('error', () => { $live.className = ''; $live.textContent = 'reconnecting…'; });
  for (const ev of ['hello', 'release', 'agent', 'origin']) es.addEventListener(ev, soon);
}
connect();
load();
setInterval(soon, 5000);
</script>
</body>
</html>
`;
