#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { VERSION } from '../engine/client.js';
import { EXIT, Output } from './output.js';

// Commands load their modules when they run: `shoal info` need not load the tracker's Redis and metrics stack.
const createCommand: typeof import('./commands/create.js').createCommand = async (...a) => (await import('./commands/create.js')).createCommand(...a);
const infoCommand: typeof import('./commands/info.js').infoCommand = async (...a) => (await import('./commands/info.js')).infoCommand(...a);
const seedCommand: typeof import('./commands/seed.js').seedCommand = async (...a) => (await import('./commands/seed.js')).seedCommand(...a);
const getCommand: typeof import('./commands/get.js').getCommand = async (...a) => (await import('./commands/get.js')).getCommand(...a);
const streamCommand: typeof import('./commands/stream.js').streamCommand = async (...a) => (await import('./commands/stream.js')).streamCommand(...a);
const trackerCommand: typeof import('./commands/tracker.js').trackerCommand = async (...a) => (await import('./commands/tracker.js')).trackerCommand(...a);

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function output(cmd: Command): Output {
  const o = cmd.optsWithGlobals<{ json?: boolean; verbose?: boolean; quiet?: boolean }>();
  return new Output(o);
}

/** Runs a command body and turns any error into a one-line message and an exit code. */
function action<A extends unknown[]>(fn: (out: Output, ...args: A) => Promise<number | void>) {
  return async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const out = output(cmd);
    try {
      const code = await fn(out, ...(args.slice(0, -1) as A));
      process.exitCode = typeof code === 'number' ? code : EXIT.ok;
    } catch (err) {
      process.exitCode = out.fail(err);
    }
  };
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('shoal')
    .description('Peer-to-peer content distribution on BitTorrent')
    .version(VERSION)
    .option('--json', 'machine-readable JSON lines on stdout')
    .option('-v, --verbose', 'more detail on stderr (peers, stack traces)')
    .option('-q, --quiet', 'no progress output')
    // Usage errors read like every other error: one `shoal: ` line on stderr (subcommands inherit this).
    .configureOutput({ outputError: (text, write) => write(`shoal: ${text.replace(/^error: /, '').trim()} (see --help)\n`) })
    .configureHelp({ showGlobalOptions: true })
    .exitOverride();

  program
    .command('create')
    .description('create a .torrent from a file or folder')
    .argument('<path>', 'file or folder to share')
    .option('-t, --tracker <url>', 'tracker announce URL (repeatable; each becomes its own tier)', collect)
    .option('-w, --web-seed <url>', 'web seed URL (BEP 19, repeatable)', collect)
    .option('-l, --piece-length <size>', 'piece length, a power of two ≥ 16KiB (e.g. 256KiB, 1MiB); default chosen by size')
    .option('-p, --private', 'set the private flag (BEP 27)')
    .option('-c, --comment <text>', 'comment stored in the torrent')
    .option('-n, --name <name>', 'name stored in the torrent (default: the file or folder name)')
    .option('-o, --output <file>', 'where to write the .torrent (default: ./<name>.torrent)')
    .action(action(async (out, path: string, opts: Record<string, unknown>) => {
      await createCommand(path, opts, out);
    }));

  program
    .command('info')
    .description('show what a .torrent or magnet link contains')
    .argument('<torrent>', '.torrent file or magnet: URI')
    .option('--fetch', 'for a magnet link: fetch the metadata from peers and show it as for a .torrent')
    .option('--peer <host:port>', 'with --fetch: also ask this peer (repeatable)', collect)
    .option('--save-torrent <file>', 'with --fetch: save the metadata as this .torrent')
    .option('--timeout <seconds>', 'with --fetch: give up (exit 5) after this long', '60')
    .option('--port <port>', 'with --fetch: peer listen port (default: any free port)')
    .option('--no-dht', 'with --fetch: no DHT (BEP 5)')
    .option('--dht-bootstrap <host:port>', 'with --fetch: DHT node to bootstrap from (repeatable)', collect)
    .option('--host <address>', 'with --fetch: listen address')
    .action(action(async (out, source: string, opts: Record<string, unknown>) => {
      await infoCommand(source, opts, out);
    }));

  program
    .command('seed')
    .description('seed a file, folder or .torrent; with a path, creates the torrent and runs an embedded tracker')
    .argument('<source>', 'file or folder to share, or a .torrent whose data is in -o')
    .option('-o, --output <dir>', 'folder holding the data of a .torrent, as for get (default: the .torrent\'s folder)')
    .option('-d, --dir <dir>', 'alias of --output')
    .option('-t, --tracker <url>', 'extra tracker URL for a created torrent (repeatable)', collect)
    .option('-w, --web-seed <url>', 'web seed URL for a created torrent (repeatable)', collect)
    .option('--no-embedded-tracker', 'do not start the embedded tracker')
    .option('--tracker-port <port>', 'embedded tracker HTTP port (0 = any free port)', '6969')
    .option('--announce-host <host>', 'address peers use to reach this machine (default: first non-loopback IPv4)')
    .option('-l, --piece-length <size>', 'piece length for a created torrent')
    .option('-p, --private', 'private flag for a created torrent')
    .option('--torrent-out <file>', 'where to write a created .torrent (default: ./<name>.torrent)')
    .option('--recheck', 'hash all data instead of trusting resume data')
    .option('--no-lsd', 'no local service discovery (BEP 14) on the LAN')
    .option('--no-pex', 'no peer exchange (BEP 11)')
    .option('--no-dht', 'no DHT (BEP 5)')
    .option('--dht-bootstrap <host:port>', 'DHT node to bootstrap from (repeatable; default: the public routers)', collect)
    .option('--port <port>', 'peer listen port (0 = any free port)', '6881')
    .option('--host <address>', 'listen address (default: all, IPv4 and IPv6)')
    .option('--upload-limit <bytes/s>', 'upload limit, e.g. 10MiB')
    .option('--max-peers <n>', 'connections per torrent')
    .option('--max-peers-per-host <n>', 'inbound connections one IP address may hold (default 8; raise for NATed fleets)')
    .action(action(async (out, source: string, opts: Record<string, unknown>) => seedCommand(source, opts, out)));

  downloadOptions(program
    .command('get')
    .description('download a torrent; exits 0 once every selected file is complete and verified')
    .argument('<torrent>', '.torrent file or magnet: URI'))
    .option('--seed', 'keep seeding after the download completes, until Ctrl-C')
    .option('--timeout <seconds>', 'give up (exit 5) if not complete by then')
    .action(action(async (out, source: string, opts: Record<string, unknown>) => getCommand(source, opts, out)));

  downloadOptions(program
    .command('stream')
    .description('download a torrent while serving its files over HTTP (play while downloading); runs until Ctrl-C')
    .argument('<torrent>', '.torrent file or magnet: URI'))
    .option('--timeout <seconds>', 'give up (exit 5) if the metadata has not arrived by then')
    .option('--file <n>', 'file to print the URL of (number from `shoal info`; default: the largest)')
    .option('--http-port <port>', 'HTTP port (default: any free port)')
    .option('--http-host <address>', 'HTTP listen address', '127.0.0.1')
    .action(action(async (out, source: string, opts: Record<string, unknown>) => streamCommand(source, opts, out)));

  program
    .command('tracker')
    .description('run a BitTorrent tracker (HTTP and UDP)')
    .option('--http-port <port>', 'HTTP port (0 = any; "off" disables)', '6969')
    .option('--udp-port <port>', 'UDP port (0 = any; "off" disables)', '6969')
    .option('--host <address>', 'listen address', '0.0.0.0')
    .option('--redis <url>', 'keep swarms in Redis so several instances share them')
    .option('--allow <file>', 'private mode: only track info-hashes listed in this file (hex, one per line)')
    .option('--zones <file>', 'CIDR → zone/rack map: return same-rack, then same-zone peers first')
    .option('--interval <seconds>', 'announce interval given to clients')
    .addOption(new Option('--passkeys <file>').hideHelp())
    .action(action(async (out, opts: Record<string, unknown>) => trackerCommand(opts, out)));

  return program;
}

/** Options shared by the commands that download (`get`, `stream`). */
function downloadOptions(cmd: Command): Command {
  return cmd
    .option('-o, --output <dir>', 'download folder', '.')
    .option('--save-torrent <file>', 'with a magnet link: also save the fetched metadata as this .torrent')
    .option('--no-lsd', 'no local service discovery (BEP 14) on the LAN')
    .option('--no-pex', 'no peer exchange (BEP 11)')
    .option('--no-dht', 'no DHT (BEP 5)')
    .option('--dht-bootstrap <host:port>', 'DHT node to bootstrap from (repeatable; default: the public routers)', collect)
    .option('--peer <host:port>', 'connect to this peer directly (repeatable)', collect)
    .option('--select <list>', 'download only these files (numbers from `shoal info`, e.g. 0,2)')
    .option('--recheck', 'hash all data on disk instead of trusting resume data')
    .option('--port <port>', 'peer listen port (default: any free port)')
    .option('--host <address>', 'listen address (default: all, IPv4 and IPv6)')
    .option('--upload-limit <bytes/s>', 'upload limit, e.g. 10MiB')
    .option('--download-limit <bytes/s>', 'download limit, e.g. 50MiB')
    .option('--max-peers <n>', 'connections per torrent')
    .option('--max-peers-per-host <n>', 'inbound connections one IP address may hold (default 8; raise for NATed fleets)')
    .option('--web-seed <url>', 'HTTP origin holding the files (BEP 19 web seed; repeatable), used where peers cannot serve', collect)
    .option('--origin-limit <bytes/s>', 'cap on what this download takes from web seeds, e.g. 5MiB');
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exit code 0; usage errors were already printed by commander.
      process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    process.exitCode = new Output({}).fail(err);
  }
}

await main(process.argv);
// Stray handles (a peer socket closing, a tracker request in flight) must not keep a finished command alive.
setTimeout(() => process.exit(), 2000).unref();
