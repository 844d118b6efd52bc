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
}

export function createLogger(opts: LoggerOptions): Logger {
  const fd = opts.fd ?? 2;
  const usePretty = opts.format === 'pretty' || (opts.format === 'auto' && fd === 2 && process.stderr.isTTY);
  const base = {
    level: opts.level,
    base: { pid: process.pid },
    // Never let a credential reach the logs, whatever a caller passes in.
    redact: {
      paths: ['*.password', '*.auth', '*.identity_token', '*.registry_token', '*.*.password', '*.*.auth'],
      censor: '[redacted]',
    },
  };
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
