import type { PeerAddress } from '../discovery/compact.js';
import { UtMetadata } from '../extensions/ut-metadata.js';
import { PEX_FLAG_REACHABLE, PEX_FLAG_SEED, UtPex, type PexPeer } from '../extensions/ut-pex.js';
import { LsdPeerSource, type Lsd } from '../discovery/lsd.js';
import type { Torrent } from './torrent.js';
import { DhtPeerSource, type Dht } from '../dht/index.js';

/** Client-wide services a torrent's swarm features hang on. */
export interface SwarmServices {
  readonly lsd: Lsd | null;
  readonly dht: Dht | null;
  readonly pex: boolean;
  readonly pexIntervalMs?: number | undefined;
}

/**
 * Gives a torrent its BEP 10 extensions and discovery sources: ut_metadata always (we serve the info dictionary of
 * every torrent we have, and fetch it for magnets); ut_pex and LSD for public torrents only (BEP 27). A magnet's
 * private flag is only known with its metadata, so PEX checks it on every use rather than once.
 */
export function installSwarmFeatures(t: Torrent, services: SwarmServices): void {
  const metadata = new UtMetadata({
    infoHash: t.infoHash,
    info: () => t.info(),
    metadataReceived: (info) => t.infoReceived(info),
    warning: (message) => t.emit('warning', message),
  });
  t.useExtension(metadata, () => metadata.tick());

  const knownPrivate = t.hasMetadata && t.isPrivate;
  if (services.pex && !knownPrivate) {
    const pex = new UtPex({
      connectedPeers: () => (t.isPrivate ? [] : pexView(t)),
      peersLearned: (peers: PexPeer[]) => {
        if (!t.isPrivate) t.peersLearned(peers, 'pex');
      },
      get listenPort() { return t.ctx.port; },
    }, services.pexIntervalMs !== undefined ? { intervalMs: services.pexIntervalMs } : {});
    t.useExtension(pex, () => pex.tick());
  }
  if (services.lsd && !knownPrivate) t.addSource(new LsdPeerSource(services.lsd, t.infoHash));
  if (services.dht && !knownPrivate) t.addSource(new DhtPeerSource(services.dht, t.swarmState));
}

/** Listen addresses of the peers we are connected to, with BEP 11 flags. */
function* pexView(t: Torrent): Iterable<{ address: PeerAddress; flags: number }> {
  for (const c of t.connections()) {
    if (c.closed || c.listenPort === 0) continue;
    const flags = (c.hasAll ? PEX_FLAG_SEED : 0) | (c.outbound ? PEX_FLAG_REACHABLE : 0);
    yield { address: { host: c.host, port: c.listenPort }, flags };
  }
}
