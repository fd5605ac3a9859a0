import { ControllerApi } from '../../fleet/api-client.js';
import type { ChannelView } from '../../fleet/types.js';
import { ShoalError } from '../../util/errors.js';
import { EXIT, formatBytes, formatDuration, type Output } from '../output.js';

export async function statusCommand(opts: { controller?: string; channel?: string }, out: Output): Promise<number> {
  if (!opts.controller) throw new ShoalError('EUSAGE', '--controller URL is required');
  const api = new ControllerApi(opts.controller);
  const views = opts.channel
    ? [await api.get<ChannelView>(`/api/channels/${encodeURIComponent(opts.channel)}`)]
    : await api.get<ChannelView[]>('/api/channels');
  if (out.json) {
    for (const v of views) out.event('channel', { ...v });
    return EXIT.ok;
  }
  if (views.length === 0) out.line('no channels yet');
  for (const v of views) {
    const s = v.summary;
    out.line(`${v.name}: ${v.latest ? `${v.latest.version} (${formatBytes(v.latest.size)})` : 'no release'} — ${s.done}/${s.subscribed} done, ${s.inProgress} in progress, ${s.failed} failed, ${s.offline} offline` +
      (v.completionSeconds !== undefined ? `; complete in ${formatDuration(v.completionSeconds)}` : ''));
    if (opts.channel) {
      for (const h of v.hosts) {
        out.line(`  ${h.host.padEnd(20)} ${(h.zone ?? '-').padEnd(8)} ${h.state.padEnd(11)} ${(h.progress * 100).toFixed(0).padStart(3)}%  current=${h.current ?? '-'}${h.reason ? `  (${h.reason}${h.error ? `: ${h.error}` : ''})` : ''}`);
      }
    }
  }
  return EXIT.ok;
}
