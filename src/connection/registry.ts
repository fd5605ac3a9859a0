import type { Extension, ExtensionConnection } from './extension.js';

/** Cap on keys we accept in a remote's `m` dictionary and handshake: anything bigger is abuse, not an extension list. */
export const MAX_EXTENDED_HANDSHAKE_KEYS = 256;

/**
 * The BEP 10 extensions of one torrent. Local ids are assigned in registration order (1, 2, …) and never change
 * while connections are open, so the `m` dictionary we send is the same for every connection.
 */
export class ExtensionRegistry {
  private readonly byLocalId: Extension[] = [];
  private readonly byName = new Map<string, Extension>();

  register(ext: Extension): void {
    if (this.byName.has(ext.name)) throw new Error(`extension ${ext.name} is already registered`);
    if (this.byLocalId.length >= 255) throw new Error('too many extensions');
    this.byLocalId.push(ext);
    this.byName.set(ext.name, ext);
  }

  get<T extends Extension>(name: string): T | undefined {
    return this.byName.get(name) as T | undefined;
  }

  get names(): string[] {
    return this.byLocalId.map((e) => e.name);
  }

  /** The extended handshake fields every registered extension contributes, with `m`. */
  handshake(): Record<string, unknown> {
    const m: Record<string, number> = {};
    const out: Record<string, unknown> = { m };
    this.byLocalId.forEach((ext, i) => {
      m[ext.name] = i + 1;
      if (ext.handshakeFields) Object.assign(out, ext.handshakeFields());
    });
    return out;
  }

  handshakeReceived(conn: ExtensionConnection, dict: Record<string, unknown>): void {
    if (Object.keys(dict).length > MAX_EXTENDED_HANDSHAKE_KEYS) {
      conn.close(`extended handshake with more than ${MAX_EXTENDED_HANDSHAKE_KEYS} keys`);
      return;
    }
    for (const ext of this.byLocalId) ext.onHandshake?.(conn, dict);
  }

  /** A message under one of our local ids. Unknown ids are ignored: the remote may be using a stale map. */
  dispatch(conn: ExtensionConnection, localId: number, payload: Buffer): void {
    const ext = this.byLocalId[localId - 1];
    if (ext) ext.onMessage(conn, payload);
  }

  closed(conn: ExtensionConnection): void {
    for (const ext of this.byLocalId) ext.onClose?.(conn);
  }
}
