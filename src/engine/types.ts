import type { PeerAddress } from '../discovery/compact.js';

export interface ClientOptions {
  /** Listen port; 0 picks a free one. Default 0 (library); the CLI defaults to 6881. */
  port?: number;
  /** Listen address. Default '::' (dual-stack), falling back to '0.0.0.0' where IPv6 is unavailable. */
  host?: string;
  /** 20-byte peer id; default `-SH0100-` + 12 random bytes. */
  peerId?: Buffer;
  /** Name advertised in the BEP 10 handshake (`v`). */
  clientName?: string;
  /** Connections across all torrents. Default 200. */
  maxConnections?: number;
  /**
   * Longest wait between two connection attempts to one address (1 s, doubling up to this). Default 30 000 ms.
   * Addresses the user gave (explicit peers, a magnet's x.pe) are retried at this pace for as long as the torrent runs.
   */
  peerRetryMaxMs?: number;
  /** Connections per torrent. Default 60. */
  maxPeersPerTorrent?: number;
  /**
   * Inbound connections one IP address may hold (handshaking or not, all torrents together). Default 8; raise it
   * when many peers share an address (a NATed fleet). Outbound connections, which we choose, are not counted.
   */
  maxConnectionsPerHost?: number;
  /** Upload and download limits in bytes per second; 0 = unlimited. */
  uploadLimit?: number;
  downloadLimit?: number;
  /**
   * Bytes per second this client takes from web seeds (BEP 19 HTTP origins), all torrents together; 0 or absent =
   * no limit beyond downloadLimit. Peers are always tried first; this caps what the origin serves this host.
   */
  originLimit?: number;
  /** Web seed timeout in ms: connecting, waiting for response headers, or a stalled body. Default 30 000. */
  webSeedTimeout?: number;
  /**
   * Piece memory each torrent keeps (bytes): recently downloaded or read pieces, served to peers without a disk read,
   * and recycled as the next download buffers. Default 16 MiB. Pieces being downloaded, hashed or written take the
   * cache's room first (it keeps at least two pieces), so a torrent holds about the larger of this and its pieces in
   * flight (about one per connected peer that is sending).
   */
  cacheBytes?: number;
  /** Announce to the torrent's trackers. Default true. */
  trackers?: boolean;
  /** Regular upload slots (tit-for-tat); one optimistic slot comes on top. Default 4. */
  uploadSlots?: number;
  /** Source address for outgoing connections (bind before connect). */
  localAddress?: string;
  /** Peer exchange (BEP 11) for public torrents. Default true. */
  pex?: boolean;
  /** Least time between two PEX messages to one peer; default (and BEP 11's minimum) 60 s. Lower only in tests. */
  pexIntervalMs?: number;
  /**
   * Local service discovery (BEP 14) for public torrents: multicast announces on the LAN. Default true, except under
   * SHOAL_SANDBOX=1, where it stays off unless SHOAL_LSD_IN_SANDBOX=1 and `lsdInterface` is in 198.18.0.0/15.
   */
  lsd?: boolean;
  /** IPv4 address of the interface LSD multicasts on (default: the system's choice). */
  lsdInterface?: string;
  /**
   * The mainline DHT (BEP 5), one node per client on UDP at the same port number as the peer port. Default on, with
   * no bootstrap nodes: an embedder chooses them (the CLI uses the public routers, dropped under SHOAL_SANDBOX=1).
   * `false` turns it off; private torrents never use it.
   */
  dht?: boolean | { bootstrap?: string[]; stateFile?: string };
  /**
   * Check the invariants that span the picker, downloader, storage and connections on every tick and connection
   * change, throwing on the first broken one. Default: on when SHOAL_DEBUG_INVARIANTS=1 (the test runner sets it).
   */
  debugInvariants?: boolean;
}

export interface AddOptions {
  /** Download folder: single-file torrents are saved as `<path>/<name>`, multi-file as `<path>/<name>/…`. */
  path: string;
  /** Indices into `meta.files` to download; default all. */
  selectedFiles?: number[];
  /** Hash all data on disk instead of trusting resume data. */
  recheck?: boolean;
  /**
   * The data on disk is known to match (the torrent was just created from it): skip hashing it again if every file
   * is present at its exact length. `shoal seed <path>` uses this so a folder is hashed once, not twice.
   */
  assumeValid?: boolean;
  /** Peers to connect to directly, in addition to trackers. */
  peers?: PeerAddress[];
  /** Web seed URLs (BEP 19), used in addition to the torrent's `url-list` and a magnet's `ws`. */
  webSeeds?: string[];
  /** Extra tracker tiers, tried after the torrent's own. */
  announce?: string[][];
  /** Keep uploading after the download completes. Default true. */
  seed?: boolean;
  /**
   * When starting as the only source (complete data), send each piece out once before any piece twice by
   * advertising pieces to peers a few at a time (see initial-seeding.ts). Default true.
   */
  initialSeeding?: boolean;
  /** Resume file location; false disables resume data. */
  resumeFile?: string | false;
  /** Also write metadata fetched for a magnet link here (it always goes to `<path>/.shoal/<info-hash>.torrent`). */
  saveTorrent?: string;
  /** A magnet link's metadata is all we want (`shoal info --fetch`): stop once it is known, download nothing. */
  metadataOnly?: boolean;
}

export interface TorrentStats {
  infoHash: string;
  name: string;
  /** Payload bytes received / sent (protocol overhead excluded); `downloaded` = `fromPeers` + `fromWebSeeds`. */
  downloaded: number;
  /** Payload bytes received from BitTorrent peers. */
  fromPeers: number;
  /** Payload bytes received from web seeds (HTTP origins, BEP 19). */
  fromWebSeeds: number;
  /** Web seeds still in use, and all configured. */
  webSeeds: number;
  webSeedsTotal: number;
  uploaded: number;
  /** Bytes per second over the last few seconds. */
  downloadRate: number;
  uploadRate: number;
  /** Verified pieces on disk, out of all pieces and out of the selected ones. */
  have: number;
  pieceCount: number;
  wantedPieces: number;
  wantedHave: number;
  /** 0..1 over the selected files. */
  progress: number;
  /** Bytes still to download for the selected files. */
  left: number;
  peers: number;
  seeds: number;
  /** Seconds until done at the current rate; null when unknown or stalled. */
  eta: number | null;
  /** Payload bytes received that were discarded (duplicates, unrequested blocks, failed pieces). */
  wasted: number;
  hashFails: number;
  done: boolean;
  state: TorrentState;
  /** Peer addresses known from all sources (connected or not). */
  knownPeers: number;
  /** Pieces with a download buffer (requested or partly received, or being verified). */
  piecesInFlight: number;
  /** Bytes of whole pieces held in the upload cache (read from disk, or just downloaded), and its blocks lent to
   * sockets whose writes have not completed yet (their memory is not reused until then). */
  cacheBytes: number;
  lentBlocks: number;
  /** The client's DHT node, when it runs one: routing-table size and lookups done. */
  dht?: { nodes: number; lookups: number };
}

/** 'metadata': a magnet waiting for its info dictionary from peers. */
export type TorrentState = 'metadata' | 'checking' | 'downloading' | 'seeding' | 'error' | 'closed';

export interface PeerStats {
  address: string;
  client: string;
  outbound: boolean;
  downloaded: number;
  uploaded: number;
  downloadRate: number;
  uploadRate: number;
  /** Fraction of pieces the peer has. */
  progress: number;
  amChoking: boolean;
  amInterested: boolean;
  peerChoking: boolean;
  peerInterested: boolean;
  outstandingRequests: number;
  /** Its requests waiting for us to serve them. */
  queuedRequests: number;
  /** Bytes we wrote to it that the kernel has not taken yet. */
  sendBacklog: number;
  hashFailures: number;
}
