/**
 * Errors a user can act on carry a stable `code` so the CLI can print one line and pick an exit code,
 * and library users can branch without matching message text.
 */
export type ShoalErrorCode =
  | 'EBENCODE'        // malformed bencode
  | 'EMETAINFO'       // structurally valid bencode that is not a valid torrent
  | 'EMAGNET'         // malformed magnet URI
  | 'EPATH'           // a file path that would escape the download folder, or is otherwise unusable
  | 'ESTORAGE'        // disk problems: full disk, permissions, files changed underneath us
  | 'EWIRE'           // peer protocol violation
  | 'ETRACKER'        // tracker failure (network, failure reason, malformed response)
  | 'EWEBSEED'        // BEP 19 web seed (HTTP server) failure: see WebSeedError.kind
  | 'EUSAGE'          // bad command-line or API arguments
  | 'ETIMEOUT';

export class ShoalError extends Error {
  readonly code: ShoalErrorCode;
  constructor(code: ShoalErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ShoalError';
    this.code = code;
  }
}

export function isShoalError(e: unknown, code?: ShoalErrorCode): e is ShoalError {
  return e instanceof ShoalError && (code === undefined || e.code === code);
}
