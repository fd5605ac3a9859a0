import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Collects cleanups as a test acquires resources and runs them in reverse order, all of them, even if some fail. */
export class Scope {
  private readonly fns: Array<() => unknown> = [];

  defer(fn: () => unknown): void { this.fns.push(fn); }

  /** Registers `thing.stop()` and returns `thing`. */
  use<T extends { stop(): Promise<void> | void }>(thing: T): T {
    this.defer(() => thing.stop());
    return thing;
  }

  async tempDir(prefix = 'shoal-interop-'): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.defer(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  async close(): Promise<void> {
    const errors: unknown[] = [];
    while (this.fns.length) {
      try { await this.fns.pop()!(); } catch (e) { errors.push(e); }
    }
    if (errors.length) throw new AggregateError(errors, `cleanup failed: ${errors.map((e) => (e as Error).message).join('; ')}`);
  }
}

/** Runs `body` with a Scope and closes it; a cleanup failure is reported but never hides the body's own error. */
export async function withScope<T>(body: (s: Scope) => Promise<T>): Promise<T> {
  const s = new Scope();
  let result: T;
  try {
    result = await body(s);
  } catch (e) {
    await s.close().catch((ce: Error) => console.error(ce.message));
    throw e;
  }
  await s.close();
  return result;
}
