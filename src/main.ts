/**
 * crisp's command line: argv → config → daemon, and the signals that stop it.
 *
 *   crisp [--config FILE] [--listen PATH] [--root DIR] [--run-dir DIR] [--log-level LEVEL]
 *         [--metrics-address ADDR]          run the daemon in the foreground
 *   crisp config [--default]                print the effective (or the default) config as TOML
 *   crisp --help | --version
 *
 * Exit codes: 0 clean stop, 1 the daemon could not start or failed, 2 bad usage or bad config.
 */
import { parseArgs } from 'node:util';
import { ConfigError, configToToml, defaultConfig, loadConfig } from './config/index.js';
import { imageImport } from './cli/image-import.js';
import { startDaemon } from './daemon.js';
import { CrispError } from './errors.js';
import { createLogger, flushLogs, type Logger } from './log/logger.js';
import { LockHeldError } from './util/instance-lock.js';
import { CRISP_VERSION } from './version.js';

const USAGE = `Usage:
  crisp [options]              run the CRI runtime daemon in the foreground
  crisp config [options]       print the effective configuration as TOML
  crisp config --default       print the built-in default configuration
  crisp image import PATH [--name REF]
                               load an OCI layout directory or an image archive
                               (docker save / OCI tar) into the image store
  crisp --version | --help

Options (override the config file, which overrides the defaults):
  --config FILE              config file (default /etc/crisp/crisp.toml, or $CRISP_CONFIG)
  --listen PATH              CRI socket (default /run/crisp/crisp.sock)
  --root DIR                 persistent state (default /var/lib/crisp)
  --run-dir DIR              volatile state (default /run/crisp)
  --log-level LEVEL          trace|debug|info|warn|error|fatal|silent (default info)
  --metrics-address ADDR     host:port for /metrics and /debug/state, "" disables (default 127.0.0.1:9547)

Configuration keys: docs/config.md.
`;

function fail(code: number, message: string): never {
  process.stderr.write(`crisp: ${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string' },
        listen: { type: 'string' },
        root: { type: 'string' },
        'run-dir': { type: 'string' },
        'log-level': { type: 'string' },
        'metrics-address': { type: 'string' },
        default: { type: 'boolean' },
        name: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (err) {
    fail(2, `${(err as Error).message}\n\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.version) {
    process.stdout.write(`crisp ${CRISP_VERSION} (CRI runtime.v1)\n`);
    return;
  }
  const [command, ...rest] = positionals;
  const isImageImport = command === 'image' && rest[0] === 'import' && rest.length === 2;
  if (!isImageImport && (rest.length > 0 || (command !== undefined && command !== 'config'))) {
    fail(2, `unknown command ${JSON.stringify(positionals.join(' '))}\n\n${USAGE}`);
  }
  if (values.name !== undefined && !isImageImport) fail(2, '--name goes with image import');
  if (values.default && command !== 'config') fail(2, '--default goes with the config command');
  if (command === 'config' && values.default) {
    process.stdout.write(configToToml(defaultConfig()));
    return;
  }

  const flags: Record<string, string> = {};
  if (values.listen !== undefined) flags.listen = values.listen;
  if (values.root !== undefined) flags.root_dir = values.root;
  if (values['run-dir'] !== undefined) flags.run_dir = values['run-dir'];
  if (values['log-level'] !== undefined) flags.log_level = values['log-level'];
  if (values['metrics-address'] !== undefined) flags.metrics_address = values['metrics-address'];

  let loaded;
  try {
    loaded = await loadConfig({ file: values.config, flags, env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) fail(2, err.message);
    throw err;
  }
  if (command === 'config') {
    process.stdout.write(configToToml(loaded.config));
    return;
  }

  const { config } = loaded;
  if (isImageImport) {
    const log = createLogger({ level: 'warn', format: config.log_format });
    try {
      const lines = await imageImport(config, rest[1] ?? '', values.name, log);
      process.stdout.write(lines.map((l) => `${l}\n`).join(''));
      return;
    } catch (err) {
      await flushLogs(log);
      if (err instanceof LockHeldError)
        fail(1, `${err.message}: is the daemon starting or stopping? try again`);
      fail(1, err instanceof Error ? err.message : String(err));
    }
  }
  const log = createLogger({ level: config.log_level, format: config.log_format });
  log.info(
    { configFile: loaded.file, configFileFound: loaded.fileFound, version: CRISP_VERSION },
    'starting crisp',
  );
  installCrashHandlers(log);

  let daemon;
  try {
    daemon = await startDaemon(config, log);
  } catch (err) {
    if (!(err instanceof CrispError) && !(err instanceof LockHeldError) && !(err instanceof ConfigError)) {
      log.fatal({ err }, 'crisp failed to start');
    }
    await flushLogs(log);
    if (err instanceof LockHeldError) {
      fail(
        1,
        `${err.message}: is crisp already running? stop it, or give this one its own --root and --listen`,
      );
    }
    if (err instanceof ConfigError) fail(2, err.message);
    if (err instanceof CrispError) fail(1, err.message);
    fail(1, `failed to start: ${(err as Error).message}`);
  }

  const started = daemon;
  const exit = (code: number): void => {
    void flushLogs(log).then(() => process.exit(code));
  };
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting without a clean shutdown');
      exit(1);
      return;
    }
    log.info({ signal }, 'shutting down');
    started.stop().then(
      () => {
        log.info('crisp stopped');
        exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * An exception nobody caught leaves the daemon in an unknown state: log it and exit so the
 * service manager restarts a clean process (recovery rebuilds state from the store). A stray
 * rejected promise is logged but does not take the node's runtime down.
 */
function installCrashHandlers(log: Logger): void {
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception; exiting');
    void flushLogs(log).then(() => process.exit(1));
  });
  process.on('unhandledRejection', (reason) => {
    log.error({ err: reason }, 'unhandled promise rejection');
  });
}

main(process.argv.slice(2)).catch((err: unknown) => {
  fail(1, `unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
});
