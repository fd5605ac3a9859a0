import { runTrackerCommand } from '../../tracker/cli.js';
import { EXIT, type Output } from '../output.js';

export async function trackerCommand(opts: Record<string, unknown>, out: Output): Promise<number> {
  await runTrackerCommand({ ...opts, json: out.json, verbose: out.verbose });
  return EXIT.ok;
}
