import { ShoalError } from '../util/errors.js';

/**
 * Why a web seed request failed. Permanent kinds (not retryable) disable the seed: asking again cannot help.
 * - not-found / gone: 404 / 410, the server does not have the file;
 * - range-not-satisfiable: 416, the server's file is shorter than the torrent says;
 * - server-error: 5xx (retryable, with back-off);
 * - timeout: no connection, no headers or a stalled body within the timeout (retryable);
 * - range-ignored: 200 with the whole file instead of 206 for the range (the body is abandoned, not downloaded);
 * - short-body: the response ended before the asked-for bytes arrived (retryable);
 * - too-many-redirects: more redirects than allowed (or a loop);
 * - network: connection refused/reset, DNS, TLS (retryable), or an address the sandbox forbids (permanent);
 * - bad-status: any other status (408 and 429 retryable, the rest permanent);
 * - bad-response: a 206 whose Content-Range or length does not match what was asked (a broken server or proxy).
 */
export type WebSeedFailure =
  | 'not-found'
  | 'gone'
  | 'range-not-satisfiable'
  | 'server-error'
  | 'timeout'
  | 'range-ignored'
  | 'short-body'
  | 'too-many-redirects'
  | 'network'
  | 'bad-status'
  | 'bad-response';

export interface WebSeedErrorInit {
  kind: WebSeedFailure;
  retryable: boolean;
  /** The URL of the request that failed (after redirects). */
  url: string;
  /** What happened, user-facing, without the "web seed <url>:" prefix nor the retry/disabled suffix. */
  detail: string;
  status?: number;
  cause?: unknown;
}

export class WebSeedError extends ShoalError {
  readonly kind: WebSeedFailure;
  readonly retryable: boolean;
  readonly status?: number;
  readonly url: string;
  /** When a retryable failure may be retried (epoch ms); undefined for permanent failures. */
  readonly retryAt?: number;

  constructor(init: WebSeedErrorInit, outcome: { retryAt?: number } = {}) {
    const suffix = !init.retryable
      ? 'this web seed is disabled'
      : outcome.retryAt !== undefined
        ? `will retry in ${formatDelay(Math.max(0, outcome.retryAt - Date.now()))}`
        : 'will retry';
    super('EWEBSEED', `web seed ${init.url}: ${init.detail}; ${suffix}`, init.cause !== undefined ? { cause: init.cause } : undefined);
    this.name = 'WebSeedError';
    this.kind = init.kind;
    this.retryable = init.retryable;
    this.url = init.url;
    if (init.status !== undefined) this.status = init.status;
    if (outcome.retryAt !== undefined) this.retryAt = outcome.retryAt;
  }
}

function formatDelay(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  return s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}
