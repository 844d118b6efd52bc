/**
 * A thin driver for the runc binary (1.1.x): one method per subcommand crisp needs, each a short
 * child process run through util/command.ts. It keeps no state and makes no decisions: whether a
 * container may be started, killed or deleted is the engines' business; this file only runs runc
 * and turns its failures into typed errors.
 */
import { CanceledError, CommandError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { CommandFailure, runCommand } from '../util/command.js';

export type RuncStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

/** The subset of `runc state` output crisp uses. `pid` is 0 once the container has stopped. */
export interface RuncState {
  id: string;
  status: RuncStatus;
  pid: number;
  bundle: string;
  /** RFC 3339 with nanoseconds, as runc prints it. */
  created: string;
}

export interface RuncOptions {
  /** The runc binary. */
  path: string;
  /** runc's state directory (`runc --root`), e.g. `<run_dir>/runc`. */
  root: string;
  /** Pass `--systemd-cgroup` (cgroup paths are `slice:prefix:name`). */
  systemdCgroup: boolean;
  log: Logger;
}

/** Every call is bounded: `timeoutMs` (default 30 s) and an optional AbortSignal. */
export interface RuncCallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const STATUSES: readonly string[] = ['creating', 'created', 'running', 'paused', 'stopped'];

/** runc's message for an id it has no state for (state, kill, delete, pause, ... all use it). */
const NOT_EXIST = /container does not exist/;

export class Runc {
  readonly #opts: RuncOptions;

  constructor(opts: RuncOptions) {
    this.#opts = opts;
  }

  /** `runc state`; undefined when runc does not know the id. */
  async state(id: string, call: RuncCallOptions = {}): Promise<RuncState | undefined> {
    let stdout: string;
    try {
      stdout = await this.#run(id, 'state', [id], call);
    } catch (err) {
      if (err instanceof CommandError && NOT_EXIST.test(err.stderrTail)) return undefined;
      throw err;
    }
    return parseState(id, stdout);
  }

  /** `runc start`: runs the user process of a container in state `created`. */
  async start(id: string, call: RuncCallOptions = {}): Promise<void> {
    await this.#run(id, 'start', [id], call);
  }

  /**
   * `runc kill [--all] <id> <signal>`. `signal` is anything runc accepts: `SIGKILL`, `KILL` or
   * `9`. `all` signals every process of the container (needed when it shares a pid namespace).
   */
  async kill(id: string, signal: string, all = false, call: RuncCallOptions = {}): Promise<void> {
    await this.#run(id, 'kill', [...(all ? ['--all'] : []), id, signal], call);
  }

  /**
   * `runc delete [--force]`. An id runc does not know counts as deleted (runc itself already
   * removed any half-written state directory when it said so).
   */
  async delete(id: string, force = false, call: RuncCallOptions = {}): Promise<void> {
    try {
      await this.#run(id, 'delete', [...(force ? ['--force'] : []), id], call);
    } catch (err) {
      if (err instanceof CommandError && NOT_EXIST.test(err.stderrTail)) return;
      throw err;
    }
  }

  /**
   * `runc update --resources -`: applies an OCI `linux.resources` object (cpu, memory, pids, ...)
   * to a live container's cgroup.
   */
  async update(id: string, resources: object, call: RuncCallOptions = {}): Promise<void> {
    await this.#run(id, 'update', ['--resources', '-', id], call, JSON.stringify(resources));
  }

  async pause(id: string, call: RuncCallOptions = {}): Promise<void> {
    await this.#run(id, 'pause', [id], call);
  }

  async resume(id: string, call: RuncCallOptions = {}): Promise<void> {
    await this.#run(id, 'resume', [id], call);
  }

  /** `runc ps --format json`: host pids of the container's processes. */
  async ps(id: string, call: RuncCallOptions = {}): Promise<number[]> {
    const stdout = await this.#run(id, 'ps', ['--format', 'json', id], call);
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout.trim() || '[]');
    } catch {
      parsed = undefined;
    }
    if (!isNumberArray(parsed)) {
      throw new CommandError(`runc ps ${id}`, 0, `unexpected output: ${stdout.slice(0, 200)}`);
    }
    return parsed;
  }

  async #run(
    id: string,
    sub: string,
    args: readonly string[],
    call: RuncCallOptions,
    input?: string,
  ): Promise<string> {
    const { path, root, systemdCgroup, log } = this.#opts;
    const argv = ['--root', root, ...(systemdCgroup ? ['--systemd-cgroup'] : []), sub, ...args];
    const timeoutMs = call.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    try {
      const opts = { timeoutMs, signal: call.signal, ...(input === undefined ? {} : { input }) };
      const { stdout } = await runCommand(path, argv, opts, (fields, msg) => {
        log.debug({ ...fields, containerId: id }, msg);
      });
      return stdout;
    } catch (err) {
      throw toRuncError(`runc ${sub} ${id}`, err, timeoutMs);
    }
  }
}

function isNumberArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((p) => typeof p === 'number');
}

function parseState(id: string, stdout: string): RuncState {
  let raw: unknown;
  try {
    raw = JSON.parse(stdout);
  } catch (err) {
    throw new CommandError(`runc state ${id}`, 0, `unparsable output: ${stdout.slice(0, 200)}`, {
      cause: err,
    });
  }
  const r = raw as Partial<Record<keyof RuncState, unknown>> | null;
  if (
    r === null ||
    typeof r !== 'object' ||
    typeof r.status !== 'string' ||
    !STATUSES.includes(r.status) ||
    typeof r.pid !== 'number'
  ) {
    throw new CommandError(`runc state ${id}`, 0, `unexpected output: ${stdout.slice(0, 200)}`);
  }
  return {
    id: typeof r.id === 'string' ? r.id : id,
    status: r.status as RuncStatus,
    pid: r.pid,
    bundle: typeof r.bundle === 'string' ? r.bundle : '',
    created: typeof r.created === 'string' ? r.created : '',
  };
}

/** Turns a CommandFailure into CommandError (or CanceledError when the caller aborted). */
function toRuncError(command: string, err: unknown, timeoutMs: number): Error {
  if (!(err instanceof CommandFailure))
    return new CommandError(command, undefined, String(err), { cause: err });
  const details = { argv: err.argv };
  switch (err.reason) {
    case 'aborted':
      return new CanceledError(`${command} was cancelled`, { cause: err, details });
    case 'timeout':
      return new CommandError(command, undefined, `timed out after ${timeoutMs} ms`, { cause: err, details });
    case 'spawn':
      return new CommandError(command, undefined, err.stderrTail, { cause: err, details });
    case 'exit':
      return new CommandError(command, err.exitCode, runcErrorMessage(err.stderrTail), {
        cause: err,
        details,
      });
  }
}

/**
 * runc logs errors through logrus: `time="…" level=error msg="container does not exist"`. Returns
 * the `msg` values (joined by "; ") so error messages read cleanly, or the trimmed text as it was
 * when it holds no such line.
 */
export function runcErrorMessage(stderr: string): string {
  const msgs: string[] = [];
  for (const line of stderr.split('\n')) {
    const m = /\blevel=(?:error|fatal|panic|warning)\b.*?\bmsg="((?:[^"\\]|\\.)*)"/.exec(line);
    if (m?.[1] === undefined) continue;
    msgs.push(unquoteGo(m[1]));
  }
  return msgs.length > 0 ? msgs.join('; ') : stderr.trim();
}

function unquoteGo(s: string): string {
  try {
    const v: unknown = JSON.parse(`"${s}"`);
    return typeof v === 'string' ? v : s;
  } catch {
    // Go escapes JSON does not know (\x00, \a, …): keep the text, drop the escaping of quotes.
    return s.replace(/\\(["\\])/g, '$1');
  }
}
