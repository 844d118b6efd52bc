/**
 * The one place crisp starts child processes (runc, conmon, CNI plugins, mknod, ...). Every call
 * is logged at debug with its argv, bounded by a timeout, cancellable with an AbortSignal, and a
 * failure becomes a CommandFailure carrying argv[0], the exit code and the tail of stderr (the
 * caller's layer turns that into its typed error). Never blocks the event loop; never leaves a
 * zombie: execa reaps the child and kills it on timeout or abort.
 */
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
