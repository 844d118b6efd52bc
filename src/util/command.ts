/**
 * The one place crisp starts child processes (runc, conmon, CNI plugins, mknod, ...). Every call
 * is logged at debug with its argv, bounded by a timeout, cancellable with an AbortSignal, and a
 * failure becomes a CommandFailure carrying argv[0], the exit code and the tail of stderr (the
 * caller's layer turns that into its typed error). Never blocks the event loop; never leaves a
 * zombie: execa reaps the child and kills it on timeout or abort.
 */
import type { Readable, Writable } from 'node:stream';
import { execa } from 'execa';

export interface RunOptions {
  /** Default 30 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  input?: string | Buffer;
  cwd?: string;
  env?: Record<string, string>;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Optional facts about a failure some callers need (e.g. CNI plugins report errors on stdout). */
export interface CommandFailureExtra {
  /** The end of the child's stdout (at most 16 000 characters, trimmed); '' if none. */
  stdoutTail?: string;
  /** The errno code when the child could not be started, e.g. `ENOENT`, `ETXTBSY`. */
  errno?: string;
}

/** A failed child process; `exitCode` is undefined when it was killed or never started. */
export class CommandFailure extends Error {
  readonly stdoutTail: string;
  readonly errno: string | undefined;

  constructor(
    readonly command: string,
    readonly argv: readonly string[],
    readonly exitCode: number | undefined,
    readonly stderrTail: string,
    readonly reason: 'exit' | 'timeout' | 'aborted' | 'spawn',
    extra: CommandFailureExtra = {},
  ) {
    super(
      `${command} ${
        reason === 'exit'
          ? `exited with code ${exitCode ?? '?'}`
          : reason === 'timeout'
            ? 'timed out'
            : reason === 'aborted'
              ? 'was cancelled'
              : 'could not be started'
      }${stderrTail ? `: ${stderrTail}` : ''}`,
    );
    this.name = 'CommandFailure';
    this.stdoutTail = extra.stdoutTail ?? '';
    this.errno = extra.errno;
  }
}

const STDERR_TAIL = 2_000;
const STDOUT_TAIL = 16_000;

function tailOf(text: unknown, max: number): string {
  const trimmed = typeof text === 'string' ? text.trim() : '';
  return trimmed.length > max ? `…${trimmed.slice(-max)}` : trimmed;
}

export type DebugLog = (fields: Record<string, unknown>, msg: string) => void;

export async function runCommand(
  file: string,
  args: readonly string[],
  opts: RunOptions = {},
  debug?: DebugLog,
): Promise<RunResult> {
  const started = performance.now();
  const result = await execa(file, args, {
    timeout: opts.timeoutMs ?? 30_000,
    cancelSignal: opts.signal,
    input: opts.input,
    cwd: opts.cwd,
    env: opts.env,
    extendEnv: opts.env === undefined,
    reject: false,
    stripFinalNewline: true,
  });
  debug?.(
    { argv: [file, ...args], exitCode: result.exitCode, durationMs: Math.round(performance.now() - started) },
    'command finished',
  );
  if (result.failed) {
    const tail = tailOf(result.stderr, STDERR_TAIL);
    const reason = result.timedOut
      ? 'timeout'
      : result.isCanceled
        ? 'aborted'
        : result.exitCode === undefined
          ? 'spawn'
          : 'exit';
    throw new CommandFailure(
      file,
      [file, ...args],
      result.exitCode,
      tail || (result.shortMessage ?? ''),
      reason,
      { stdoutTail: tailOf(result.stdout, STDOUT_TAIL), errno: reason === 'spawn' ? result.code : undefined },
    );
  }
  return { stdout: result.stdout, stderr: result.stderr };
}

/** A long-lived child whose stdin and stdout carry a stream (a relay, a netns dialer). */
export interface PipedProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** Resolves once the child has exited and been reaped; never rejects. */
  readonly exited: Promise<PipedExit>;
  /** SIGKILLs the child unless it has already exited. */
  kill(): void;
  /** Calls `listener` with each complete line the child writes to stderr. */
  onStderr(listener: (line: string) => void): void;
}

export interface PipedExit {
  /** The exit code, or undefined when a signal ended the child or it never started. */
  exitCode: number | undefined;
  signal: string | undefined;
  /** The end of stderr (trimmed), or why the child could not be started. */
  stderrTail: string;
}

/**
 * Starts a child whose stdin/stdout the caller streams through (no buffering, no timeout: the
 * caller bounds it and kills it). stderr is kept as a short tail for error messages. execa reaps
 * the child, so no zombie is left however it ends.
 */
export function startPiped(file: string, args: readonly string[], debug?: DebugLog): PipedProcess {
  const started = performance.now();
  const sub = execa(file, args, {
    buffer: false,
    reject: false,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  let tail = '';
  let partial = '';
  const lineListeners: ((line: string) => void)[] = [];
  sub.stderr.setEncoding('utf8');
  sub.stderr.on('data', (d: string) => {
    tail = (tail + d).slice(-STDERR_TAIL);
    if (lineListeners.length === 0) return;
    const lines = (partial + d).split('\n');
    partial = (lines.pop() ?? '').slice(-STDERR_TAIL);
    for (const line of lines) for (const l of lineListeners) l(line);
  });
  // A peer that went away shows up as a failed write; it must not crash the daemon.
  sub.stdin.on('error', () => undefined);
  sub.stdout.on('error', () => undefined);
  const exited = sub.then(
    (result): PipedExit => {
      debug?.(
        {
          argv: [file, ...args],
          exitCode: result.exitCode,
          signal: result.signal,
          durationMs: Math.round(performance.now() - started),
        },
        'command finished',
      );
      return {
        exitCode: result.exitCode,
        signal: result.signal,
        stderrTail: tail.trim() || (result.exitCode === undefined ? (result.shortMessage ?? '') : ''),
      };
    },
    (err: unknown): PipedExit => ({
      exitCode: undefined,
      signal: undefined,
      stderrTail: err instanceof Error ? err.message : String(err),
    }),
  );
  debug?.({ argv: [file, ...args], pid: sub.pid }, 'command started');
  return {
    stdin: sub.stdin,
    stdout: sub.stdout,
    exited,
    kill() {
      if (sub.exitCode === null && sub.signalCode === null) sub.kill('SIGKILL');
    },
    onStderr(listener) {
      lineListeners.push(listener);
    },
  };
}
