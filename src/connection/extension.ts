/**
 * BEP 10 extensions. A torrent's connections share one registry; each extension registers a name (`ut_metadata`,
 * `ut_pex`, …), adds keys to the extended handshake we send, and handles the messages the remote sends under the id
 * we gave that name. The registry assigns our local ids and maps the remote's ids per connection, so an extension
 * only ever deals in names.
 */

/** What an extension sees of one connection. */
export interface ExtensionConnection {
  /** `host:port` (brackets for IPv6) as connected; stable for the life of the connection. */
  readonly address: string;
  readonly host: string;
  /** The port the remote accepts connections on: its BEP 10 `p` if it sent one, else the port we dialed (0 if inbound and unknown). */
  readonly listenPort: number;
  readonly outbound: boolean;
  /** The remote's extended handshake, once it arrived (keys are latin1 strings, values decoded bencode). */
  readonly remoteHandshake: Record<string, unknown> | undefined;
  /** True when the remote's handshake lists `name` in its `m` dictionary with a non-zero id. */
  supports(name: string): boolean;
  /** Sends `payload` as extension `name`; returns false (sends nothing) when the remote does not support it. */
  sendExtended(name: string, payload: Buffer): boolean;
  /** Drops the connection because it broke the extension's protocol; the reason reaches logs and peer events. */
  close(reason: string): void;
}

export interface Extension {
  /** The name in the `m` dictionary. */
  readonly name: string;
  /** Extra top-level keys for the extended handshake we send (e.g. `metadata_size`); called for each handshake. */
  handshakeFields?(): Record<string, unknown>;
  /** The remote's extended handshake arrived (BEP 10 allows it to be sent again later; then this is called again). */
  onHandshake?(conn: ExtensionConnection, dict: Record<string, unknown>): void;
  /** A message for this extension. `payload` is valid only during the call: copy what you keep. */
  onMessage(conn: ExtensionConnection, payload: Buffer): void;
  /** The connection ended. */
  onClose?(conn: ExtensionConnection): void;
}
