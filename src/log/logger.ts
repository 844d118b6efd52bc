/**
 * The daemon's logger: pino, structured JSON to stderr by default, human-readable when asked
 * or when stderr is a terminal. Log keys follow docs/architecture.md: rpc, sandboxId,
 * containerId, image, durationMs, err.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

export type LogFormat = 'auto' | 'json' | 'pretty';

export interface LoggerOptions {
  level: LevelWithSilent;
  format: LogFormat;
  /** Defaults to stderr's file descriptor. */
  fd?: number;
  /** Write JSON lines here instead of `fd` (tests capture log output this way). */
  stream?: NodeJS.WritableStream;
}

/** Keys whose values are secrets (registry credentials, tokens, HTTP auth headers), at any of the first levels. */
const SECRET_KEYS = [
  'password',
  'auth',
  'identity_token',
  'identityToken',
  'registry_token',
  'registryToken',
  'token',
  'access_token',
  'refresh_token',
  'authorization',
  'Authorization',
  'cookie',
];

/** pino redaction paths: each secret key at the top level and one or two objects down. */
const REDACTED_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);

export function createLogger(opts: LoggerOptions): Logger {
  const fd = opts.fd ?? 2;
  const usePretty = opts.format === 'pretty' || (opts.format === 'auto' && fd === 2 && process.stderr.isTTY);
  const base = {
    level: opts.level,
    base: { pid: process.pid },
    // Never let a credential reach the logs, whatever a caller passes in (defence in depth: the
    // image code already keeps secrets out of what it logs and of error messages).
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  if (opts.stream) return pino(base, opts.stream);
  if (usePretty) {
    return pino(base, pretty({ destination: fd, sync: true, colorize: process.stderr.isTTY }));
  }
  return pino(base, pino.destination({ fd, sync: false }));
}

/** Waits (at most `timeoutMs`) until buffered log lines are written, e.g. before process.exit. */
export function flushLogs(log: Logger, timeoutMs = 2_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    log.flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
