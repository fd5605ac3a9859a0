export * from './compact.js';
export * from './types.js';
export { announceHttp, buildAnnounceUrl, parseAnnounceResponse, parseScrapeResponse, percentEncodeBytes, scrapeHttp, scrapeUrlFor,
  DEFAULT_MAX_RESPONSE_BYTES, type HttpTrackerOptions } from './http-tracker.js';
export { UdpTrackerClient, announceUdp, scrapeUdp, type UdpTrackerOptions, type UdpRequestOptions } from './udp-tracker.js';
export { Announcer, type AnnouncerOptions, type AnnouncerStats, type AnnounceResponseInfo } from './announcer.js';
export { scrape, type ScrapeOptions } from './scrape.js';
