#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { VERSION } from '../version.js';
import { EXIT, Output } from './output.js';

// Commands load their modules when they run: `shoal info` need not load the tracker's Redis and metrics stack.
const createCommand: typeof import('./commands/create.js').createCommand = async (...a) => (await import('./commands/create.js')).createCommand(...a);
const infoCommand: typeof import('./commands/info.js').infoCommand = async (...a) => (await import('./commands/info.js')).infoCommand(...a);
const seedCommand: typeof import('./commands/seed.js').seedCommand = async (...a) => (await import('./commands/seed.js')).seedCommand(...a);
const getCommand: typeof import('./commands/get.js').getCommand = async (...a) => (await import('./commands/get.js')).getCommand(...a);
const streamCommand: typeof import('./commands/stream.js').streamCommand = async (...a) => (await import('./commands/stream.js')).streamCommand(...a);
const trackerCommand: typeof import('./commands/tracker.js').trackerCommand = async (...a) => (await import('./commands/tracker.js')).trackerCommand(...a);
const controllerCommand: typeof import('./commands/controller.js').controllerCommand = async (...a) => (await import('./commands/controller.js')).controllerCommand(...a);
const agentCommand: typeof import('./commands/agent.js').agentCommand = async (...a) => (await import('./commands/agent.js')).agentCommand(...a);
const publishCommand: typeof import('./commands/publish.js').publishCommand = async (...a) => (await import('./commands/publish.js')).publishCommand(...a);
const statusCommand: typeof import('./commands/status.js').statusCommand = async (...a) => (await import('./commands/status.js')).statusCommand(...a);
const keygenCommand: typeof import('./commands/keygen.js').keygenCommand = async (...a) => (await import('./commands/keygen.js')).keygenCommand(...a);

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
    .option('--no-initial-seeding', 'advertise every piece at once (for streaming origins), instead of a few at a time so each goes out once first')
    .option('--recheck', 'hash all data instead of trusting resume data')
    .option('--no-lsd', 'no local service discovery (BEP 14) on the LAN')
    .option('--no-pex', 'no peer exchange (BEP 11)')
    .option('--no-dht', 'no DHT (BEP 5)')
    .option('--dht-bootstrap <host:port>', 'DHT node to bootstrap from (repeatable; default: the public routers)', collect)
    .option('--port <port>', 'peer listen port (0 = any free port)', '6881')
    .option('--host <address>', 'listen address (default: all, IPv4 and IPv6)')
    .option('--upload-limit <bytes/s>', 'upload limit, e.g. 10MiB')
    .option('--cache <size>', 'piece memory kept per torrent for uploads and reused as download buffers (default 16MiB)')
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

  // Fleet rollouts: a controller, an agent on every host, publish a release, watch it roll out.
  program
    .command('controller')
    .description('run the fleet controller: release API, dashboard, live events and an embedded tracker on one port')
    .option('--host <address>', 'listen address', '127.0.0.1')
    .option('--http-port <port>', 'HTTP port for API, dashboard and /announce (0 = any)', '7070')
    .option('--public-host <host>', 'host name written into URLs handed out (default: --host)')
    .option('--state <dir>', 'keep channels, releases and agent reports here (survives restarts)')
    .option('--token-file <file>', 'bearer tokens (one a line) that may change state; default <state>/token, made if missing')
    .option('--zones <file>', 'CIDR → zone/rack map for locality-aware peer lists, as for shoal tracker')
    .option('--redis <url>', 'keep state and tracker swarms in Redis so several controllers serve one fleet')
    .action(action(async (out, opts: Record<string, unknown>) => controllerCommand(opts, out)));

  program
    .command('agent')
    .description('run a fleet agent: download each release of its channels, switch current, run a hook, keep seeding')
    .option('--controller <url>', 'controller URL, e.g. http://10.0.0.5:7070')
    .option('--token-file <file>', 'bearer token for reports')
    .option('-d, --dir <dir>', 'releases go to <dir>/<channel>/<version>/, current is <dir>/<channel>/current', '.')
    .option('--channel <name>', 'channel to follow (repeatable)', collect)
    .option('--zone <zone>', 'zone label')
    .option('--rack <rack>', 'rack label')
    .option('--name <name>', 'host name shown on the dashboard (default: the machine\'s)')
    .option('--keep <n>', 'releases kept per channel, current included', '2')
    .option('--max-disk <size>', 'disk budget for all kept releases, e.g. 20GiB')
    .option('--on-release <cmd>', 'shell command run after current switched (env: SHOAL_CHANNEL, SHOAL_VERSION, SHOAL_PATH)')
    .option('--trust <pubkey>', 'refuse releases not signed by this Ed25519 public key (base64, or a file)')
    .option('--api-port <port>', 'local status API on 127.0.0.1 (0 = any)')
    .option('--port <port>', 'peer listen port (default: any free port)')
    .option('--host <address>', 'listen address (default: all, IPv4 and IPv6)')
    .option('--upload-limit <bytes/s>', 'upload limit, e.g. 10MiB')
    .option('--cache <size>', 'piece memory kept per torrent for uploads and reused as download buffers (default 16MiB)')
    .option('--download-limit <bytes/s>', 'download limit, e.g. 50MiB')
    .option('--max-peers <n>', 'connections per torrent')
    .option('--no-pex', 'no peer exchange (BEP 11)')
    .option('--no-lsd', 'no local service discovery (BEP 14)')
    .action(action(async (out, opts: Record<string, unknown>) => agentCommand(opts, out)));

  program
    .command('publish')
    .description('publish a file or folder as a release of a channel and seed it as origin until the fleet has it')
    .argument('<path>', 'file or folder to publish')
    .option('--controller <url>', 'controller URL')
    .option('--token-file <file>', 'bearer token')
    .option('--channel <name>', 'channel')
    .option('--release-version <v>', 'version (default: UTC time YYYYMMDD-HHMMSS); `--version V` after publish means this')
    .option('-w, --web-seed <url>', 'web seed URL (BEP 19, repeatable)', collect)
    .option('--key <file>', 'Ed25519 private key (shoal keygen) to sign the manifest')
    .option('--until <percent>', 'stop seeding once this % of subscribed hosts is done', '100')
    .option('--timeout <seconds>', 'give up (exit 5) after this long')
    .option('--origin-host <host>', 'address agents use to reach this machine (default: as the controller sees it)')
    .option('-l, --piece-length <size>', 'piece length')
    .option('--port <port>', 'peer listen port (default: any free port)')
    .option('--host <address>', 'listen address (default: all, IPv4 and IPv6)')
    .option('--upload-limit <bytes/s>', 'upload limit, e.g. 10MiB')
    .option('--cache <size>', 'piece memory kept per torrent for uploads and reused as download buffers (default 16MiB)')
    .option('--max-peers <n>', 'connections per torrent')
    .option('--no-pex', 'no peer exchange (BEP 11)')
    .option('--no-lsd', 'no local service discovery (BEP 14)')
    .action(action(async (out, path: string, opts: Record<string, unknown>) => publishCommand(path, opts, out)));

  program
    .command('status')
    .description('show the rollout of every channel (or one) from a controller')
    .option('--controller <url>', 'controller URL')
    .option('--channel <name>', 'one channel, with every host')
    .action(action(async (out, opts: Record<string, unknown>) => statusCommand(opts, out)));

  program
    .command('keygen')
    .description('make an Ed25519 key pair for signing releases (private key in FILE, public key in FILE.pub)')
    .option('-o, --output <file>', 'private key file')
    .option('--force', 'overwrite an existing key file')
    .action(action(async (out, opts: Record<string, unknown>) => keygenCommand(opts, out)));

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
    .option('--cache <size>', 'piece memory kept per torrent for uploads and reused as download buffers (default 16MiB)')
    .option('--download-limit <bytes/s>', 'download limit, e.g. 50MiB')
    .option('--max-peers <n>', 'connections per torrent')
    .option('--max-peers-per-host <n>', 'inbound connections one IP address may hold (default 8; raise for NATed fleets)')
    .option('--web-seed <url>', 'HTTP origin holding the files (BEP 19 web seed; repeatable), used where peers cannot serve', collect)
    .option('--origin-limit <bytes/s>', 'cap on what this download takes from web seeds, e.g. 5MiB');
}

/**
 * `shoal publish … --version V` names the release, but the program's own --version (print Shoal's version) would
 * take it first wherever it stands: after `publish` it is renamed to the publish option.
 */
function publishVersionArg(argv: string[]): string[] {
  const i = argv.indexOf('publish');
  if (i < 2) return argv;
  return argv.map((a, j) => (j > i && a === '--version' ? '--release-version' : j > i && a.startsWith('--version=') ? `--release-version=${a.slice(10)}` : a));
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(publishVersionArg(argv));
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
