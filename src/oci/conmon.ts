/**
 * Drives conmon 2.1.6 the way CRI-O 1.26 does (the contract is /work/shared/notes/conmon.md):
 * `createContainer` starts the per-container monitor, which runs `runc create`; `execSync` runs a
 * command in a container through `conmon --sync -e` and reads its output back from a CRI log file.
 * The ctl FIFO, the exit file and the oom marker live in conmon-files.ts and the log parser in
 * cri-log.ts; both are re-exported here. Stateless and rule-free: every path comes from the caller.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { CanceledError, CommandError, InternalError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { CriLogParser } from './cri-log.js';
import { runcErrorMessage } from './runc.js';
import { descendantsOf } from '../util/proc.js';

export { parseCriLog, CriLogParser, type CriLogOutput, type CappedCriLogOutput } from './cri-log.js';
export {
  reopenLog,
  resizeTerminal,
  readExitFile,
  hasOomFile,
  type ExitFile,
  type ReopenLogOptions,
} from './conmon-files.js';

export type ConmonLogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** The PATH conmon (and the runc it forks) sees; CRI-O's default `monitor_env`. */
const MONITOR_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const STDERR_TAIL = 2_000;
/** A sync-pipe line longer than this is not conmon talking. */
const MAX_SYNC_LINE = 256 * 1024;

export interface ConmonCreateOptions {
  conmonPath: string;
  /** The runc binary conmon runs. */
  runtimePath: string;
  /** runc's `--root` (passed as `--runtime-arg --root=<runtimeRoot>`). */
  runtimeRoot: string;
  /** Container id: the runc id and the exit file's name. */
  id: string;
  /** Container name, for conmon's journald fields only. */
  name: string;
  /** The OCI bundle; conmon's cwd. conmon creates `attach`, `ctl`, `winsz`, `conmon-pidfile` and `pidfile` in it. */
  bundle: string;
  /** The CRI log file. */
  logPath: string;
  /** conmon writes `<exitDir>/<id>` with the exit status. */
  exitDir: string;
  /** conmon writes `exit` and, on OOM, `oom` here. */
  persistDir: string;
  /** Parent of the attach-socket symlink `<socketDir>/<id>`. */
  socketDir: string;
  terminal: boolean;
  stdin: boolean;
  stdinOnce: boolean;
  systemdCgroup: boolean;
  /** Truncate the log when it would exceed this many bytes (conmon discards, it does not rotate). */
  logSizeMax?: number;
  /** Default `info`, like CRI-O. */
  logLevel?: ConmonLogLevel;
  /** Bound for the whole create, default 60 s; on expiry conmon's process groups are killed. */
  timeoutMs?: number;
  signal?: AbortSignal;
  log: Logger;
}

export interface ConmonCreateResult {
  /** The container's init pid (host namespace); runc state is `created`. */
  pid: number;
  /** The long-lived conmon monitor (from `<bundle>/conmon-pidfile`). */
  conmonPid: number;
}

/** Where conmon writes its own pid; read it again after a daemon restart. */
export function conmonPidFile(bundle: string): string {
  return join(bundle, 'conmon-pidfile');
}

/** CRI-O 1.26's create argv (notes/conmon.md §2), in its order. */
export function conmonCreateArgs(o: Omit<ConmonCreateOptions, 'conmonPath' | 'log'>): string[] {
  // prettier-ignore
  const args = [
    '-b', o.bundle,
    '-c', o.id,
    '--exit-dir', o.exitDir,
    '-l', o.logPath,
    '--log-level', o.logLevel ?? 'info',
    '-n', o.name,
    '-P', conmonPidFile(o.bundle),
    '-p', join(o.bundle, 'pidfile'),
    '--persist-dir', o.persistDir,
    '-r', o.runtimePath,
    '--runtime-arg', `--root=${o.runtimeRoot}`,
    '--socket-dir-path', o.socketDir,
    '--syslog',
    '-u', o.id,
  ];
  if (o.systemdCgroup) args.push('-s');
  if (o.logSizeMax !== undefined && o.logSizeMax > 0) args.push('--log-size-max', String(o.logSizeMax));
  if (o.terminal) args.push('-t');
  else if (o.stdin) {
    if (!o.stdinOnce) args.push('--leave-stdin-open');
    args.push('-i');
  }
  return args;
}

/**
 * Starts conmon for a container and waits until `runc create` has finished: the container is then
 * in runc state `created` (conmon never runs `runc start`; the caller does). On failure nothing of
 * conmon is left running, but runc may have left state behind: the caller runs `runc delete --force`.
 */
export async function createContainer(opts: ConmonCreateOptions): Promise<ConmonCreateResult> {
  const command = `conmon (runc create ${opts.id})`;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const args = conmonCreateArgs(opts);
  const started = performance.now();
  const pidFile = conmonPidFile(opts.bundle);
  // A stale -P file would make a timeout kill the wrong process.
  await rm(pidFile, { force: true });
  opts.log.debug({ argv: [opts.conmonPath, ...args], containerId: opts.id }, 'starting conmon');
  const proc = await spawnConmon(opts.conmonPath, args, opts.bundle, command);

  // The first process forks the monitor, writes its pid to -P and exits. On timeout or abort kill
  // both: the first process's group and, once -P exists, the monitor's (it called setsid(), and
  // runc create is its child with PDEATHSIG=SIGKILL).
  const killAll = async (): Promise<void> => {
    killGroup(proc.child.pid);
    const monitor = await readPid(pidFile);
    if (monitor !== undefined) killGroup(monitor);
  };
  const bounded = bound(timeoutMs, opts.signal, command, killAll);
  try {
    proc.start();
    const exit = await bounded.race(proc.exited);
    if (exit.code !== 0) {
      throw new CommandError(
        command,
        exit.code ?? undefined,
        proc.stderrTail() || `killed by ${exit.signal}`,
      );
    }
    const conmonPid = await readPid(pidFile);
    if (conmonPid === undefined) throw new CommandError(command, 0, `conmon wrote no pid to ${pidFile}`);
    const line = await bounded.race(proc.readLine());
    if (line === undefined) {
      throw new CommandError(`runc create ${opts.id}`, undefined, 'runc create failed without a message');
    }
    const msg = parseSyncLine(line, command);
    const pid = msg.value;
    if (pid <= 0) {
      // runc exits 1 on every error; conmon forwards only its stderr (the first 8 KiB).
      throw new CommandError(`runc create ${opts.id}`, 1, runcErrorMessage(msg.message ?? ''));
    }
    opts.log.debug(
      { containerId: opts.id, pid, conmonPid, durationMs: Math.round(performance.now() - started) },
      'container created',
    );
    return { pid, conmonPid };
  } finally {
    bounded.clear();
    await bounded.killed();
    await proc.close();
  }
}

export interface ExecSyncOptions {
  conmonPath: string;
  runtimePath: string;
  runtimeRoot: string;
  /** Container id. */
  id: string;
  name: string;
  /** An OCI `process` object (args, env, cwd, user, terminal, …), written to `<workDir>/process.json`. */
  processSpec: object;
  /** conmon kills the command after this many seconds (`-T`); 0 means no limit. */
  timeoutSec: number;
  /** An empty temporary directory the caller creates and removes. */
  workDir: string;
  systemdCgroup: boolean;
  /** Each of stdout and stderr is cut to this many bytes. */
  maxOutputBytes: number;
  logLevel?: ConmonLogLevel;
  /** Slack past `timeoutSec` before crisp kills conmon and the command (default 0: the exact deadline). */
  overrunMs?: number;
  signal?: AbortSignal;
  log: Logger;
}

export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  /** The command's exit status (128 + signal when killed); -1 when it timed out (CRI-O's convention). */
  exitCode: number;
  timedOut: boolean;
  /**
   * Output was lost: a stream had more than maxOutputBytes (it holds its first maxOutputBytes), or
   * the log file reached conmon's `--log-global-size-max` and conmon stopped writing it.
   */
  truncated: boolean;
}

/** The longest delay a Node timer takes (2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** conmon parses -T as a C int. */
const CONMON_TIMEOUT_MAX_SEC = 2 ** 31 - 1;

/** How long past `-T` conmon may take before crisp kills it (and the command) itself. */
const EXEC_DEADLINE_SLACK_MS = 0;
/** conmon's -T is this much later than crisp's own deadline: a backstop only. */
const CONMON_TIMEOUT_BACKSTOP_SEC = 5;
/** How long conmon has to reap a killed exec and exit before it is killed too. */
const CONMON_REAP_MS = 2_000;
/** Rounds of "find what is left below conmon, kill it" before giving up (one per 10 ms). */
const EXEC_KILL_ROUNDS = 200;

/**
 * CRI-O's ExecSync: `conmon --sync -e` runs `runc exec --detach` and waits for the command; the exit
 * status comes back on the sync pipe and the output through a CRI log file in `workDir`. A runc
 * failure (e.g. the binary does not exist) is a CommandError; a timeout is a result with
 * `timedOut` and exit code -1, holding the output written until then.
 */
export async function execSync(opts: ExecSyncOptions): Promise<ExecSyncResult> {
  const command = `conmon (runc exec ${opts.id})`;
  const specPath = join(opts.workDir, 'process.json');
  const logPath = join(opts.workDir, 'exec.log');
  const execPidFile = join(opts.workDir, 'pidfile');
  // The log holds ~40 bytes of header per line on top of the output; leave room for that before
  // conmon stops writing (output beyond the cap is dropped by the parser anyway).
  const logGlobalMax = 4 * opts.maxOutputBytes + 64 * 1024;
  const terminal = (opts.processSpec as { terminal?: unknown }).terminal === true;
  await writeFile(specPath, JSON.stringify(opts.processSpec), { mode: 0o600 });

  // prettier-ignore
  const args = [
    '-c', opts.id,
    '-n', opts.name,
    '-r', opts.runtimePath,
    '-p', execPidFile,
    '-e',
    '-l', logPath,
    // No -b, so conmon makes no attach socket; point the socket dir at workDir all the same.
    '--socket-dir-path', opts.workDir,
    '--log-level', opts.logLevel ?? 'info',
    '--sync',
    '--log-global-size-max', String(logGlobalMax),
  ];
  if (terminal) args.push('-t');
  // crisp keeps the exact deadline itself (the bound below), killing the command while conmon
  // lives to reap it. conmon's own -T kills and exits without reaping, which would leave the
  // command a zombie of the node's init: it is only a backstop, should crisp itself be gone.
  if (opts.timeoutSec > 0) {
    args.push('-T', String(Math.min(opts.timeoutSec + CONMON_TIMEOUT_BACKSTOP_SEC, CONMON_TIMEOUT_MAX_SEC)));
  }
  if (opts.systemdCgroup) args.push('-s');
  args.push('--exec-process-spec', specPath, '--runtime-arg', `--root=${opts.runtimeRoot}`);

  const started = performance.now();
  opts.log.debug({ argv: [opts.conmonPath, ...args], containerId: opts.id }, 'exec sync');
  const proc = await spawnConmon(opts.conmonPath, args, opts.workDir, command);
  // With --sync the spawned process is the monitor, and the command's subreaper. On timeout or
  // cancel, the command and everything below it are killed first and conmon is left to reap them
  // and exit (so nothing is left, not even a zombie, when the caller hears of it); conmon itself
  // is killed only if it has not exited within CONMON_REAP_MS.
  const overrun = { happened: false };
  const killAll = async (): Promise<void> => {
    await killExecTree(proc.child.pid, execPidFile);
    if (!(await exitsWithin(proc.exited, CONMON_REAP_MS))) killGroup(proc.child.pid);
  };
  const overrunMs =
    opts.timeoutSec > 0 ? opts.timeoutSec * 1000 + (opts.overrunMs ?? EXEC_DEADLINE_SLACK_MS) : undefined;
  const bounded = bound(overrunMs, opts.signal, command, async () => {
    overrun.happened = true;
    await killAll();
  });
  let lines: string[];
  let exit: { code: number | null; signal: NodeJS.Signals | null };
  try {
    proc.start();
    try {
      [lines, exit] = await bounded.race(Promise.all([proc.readLines(), proc.exited]));
    } catch (err) {
      if (!(overrun.happened && err instanceof CommandError)) throw err;
      // Our own bound fired; conmon is gone, report it as the timeout it is.
      lines = [];
      exit = { code: null, signal: 'SIGKILL' };
    }
  } finally {
    bounded.clear();
    await bounded.killed();
    await proc.close();
  }

  let exitCode: number;
  let timedOut = false;
  const last = lines.at(-1);
  if (overrun.happened) {
    opts.log.debug(
      { containerId: opts.id, timeoutSec: opts.timeoutSec },
      'exec reached its timeout; killed it',
    );
    timedOut = true;
    exitCode = -1;
  } else if (last === undefined) {
    throw new CommandError(
      command,
      exit.code ?? undefined,
      proc.stderrTail() || 'conmon reported no exit status',
    );
  } else {
    const msg = parseSyncLine(last, command);
    if (msg.value === -1 && msg.message === 'command timed out') {
      timedOut = true;
      exitCode = -1;
    } else if (msg.value === -1 && msg.message !== undefined) {
      throw new CommandError(`runc exec ${opts.id}`, 1, runcErrorMessage(msg.message));
    } else {
      exitCode = msg.value;
    }
  }

  const out = await readCappedCriLog(logPath, opts.maxOutputBytes, logGlobalMax);
  opts.log.debug(
    { containerId: opts.id, exitCode, timedOut, durationMs: Math.round(performance.now() - started) },
    'exec sync finished',
  );
  return { stdout: out.stdout, stderr: out.stderr, exitCode, timedOut, truncated: out.truncated };
}

async function readCappedCriLog(
  path: string,
  maxBytes: number,
  fileLimit: number,
): Promise<{ stdout: Buffer; stderr: Buffer; truncated: boolean }> {
  const parser = new CriLogParser(maxBytes);
  let size = 0;
  try {
    for await (const chunk of createReadStream(path)) {
      const buf = chunk as Buffer;
      size += buf.length;
      parser.push(buf);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new InternalError(`cannot read exec log ${path}`, { cause: err });
    }
  }
  const out = parser.end();
  // conmon checks the limit before each write, so a full file stops short of it by < one write.
  return { ...out, truncated: out.truncated || size >= fileLimit - 9 * 1024 };
}

// ---------------------------------------------------------------------------------------------
// Spawning conmon and speaking the sync/start pipes.

interface ConmonProcess {
  child: ChildProcess;
  /** Writes the byte conmon waits for on the start pipe (then closes our end). */
  start(): void;
  /** Writes one start byte and keeps the pipe open (exec-attach waits for a second byte). */
  startByte(): void;
  /** Our end of the attach pipe (fd 5), when asked for. */
  attachPipe: Socket | undefined;
  /** Resolves when the spawned process has exited and been reaped. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The first line on the sync pipe, or undefined at EOF. Does not wait for EOF. */
  readLine(): Promise<string | undefined>;
  /** Every line until EOF. */
  readLines(): Promise<string[]>;
  stderrTail(): string;
  /** Closes our ends of all pipes; waits (briefly) for the child to be reaped. */
  close(): Promise<void>;
}

export async function spawnConmon(
  file: string,
  args: string[],
  cwd: string,
  command: string,
  opts: { attachPipe?: boolean } = {},
): Promise<ConmonProcess> {
  // This spawn deliberately bypasses util/command.ts (runCommand): conmon needs two extra
  // socketpairs on fds 3 and 4 (the sync and start pipes), must be detached into its own process
  // group, and — for create — its monitor outlives the call; runCommand only runs short-lived
  // children with the three standard streams.
  const child = spawn(file, args, {
    cwd,
    detached: true,
    stdio: [
      'ignore',
      'ignore',
      'pipe',
      'pipe',
      'pipe',
      ...(opts.attachPipe === true ? ['pipe' as const] : []),
    ],
    env: {
      PATH: MONITOR_PATH,
      _OCI_SYNCPIPE: '3',
      _OCI_STARTPIPE: '4',
      ...(opts.attachPipe === true ? { _OCI_ATTACHPIPE: '5' } : {}),
    },
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });
  const spawnError = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => {
      resolve(undefined);
    });
    child.once('error', resolve);
  });
  const [, , stderr, sync, startPipe] = child.stdio;
  const attachPipe: unknown = (child.stdio as readonly unknown[])[5];
  if (spawnError !== undefined) {
    for (const s of [stderr, sync, startPipe]) s?.destroy();
    if (attachPipe instanceof Socket) attachPipe.destroy();
    throw new CommandError(command, undefined, `cannot start ${file}: ${spawnError.message}`, {
      cause: spawnError,
    });
  }
  if (
    !(sync instanceof Socket) ||
    !(startPipe instanceof Socket) ||
    !(stderr instanceof Socket) ||
    (opts.attachPipe === true && !(attachPipe instanceof Socket))
  ) {
    killGroup(child.pid);
    throw new InternalError('conmon was spawned without its socketpairs');
  }
  const attach = attachPipe instanceof Socket ? attachPipe : undefined;
  // A peer that went away shows up as EOF or as a failed write; neither may crash the daemon.
  for (const s of [stderr, sync, startPipe, ...(attach ? [attach] : [])]) s.on('error', () => undefined);
  child.on('error', () => undefined);

  let tail = '';
  stderr.setEncoding('utf8');
  stderr.on('data', (d: string) => {
    tail = (tail + d).slice(-STDERR_TAIL);
  });

  let buffered = '';
  let ended = false;
  const waiters: (() => void)[] = [];
  const wake = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  sync.setEncoding('utf8');
  sync.on('data', (d: string) => {
    buffered += d;
    if (buffered.length > MAX_SYNC_LINE) sync.destroy();
    wake();
  });
  sync.on('close', () => {
    ended = true;
    wake();
  });
  const changed = (): Promise<void> =>
    new Promise((resolve) => {
      waiters.push(resolve);
    });

  return {
    child,
    exited,
    attachPipe: attach,
    start() {
      startPipe.end(Buffer.from([0]));
    },
    startByte() {
      startPipe.write(Buffer.from([0]));
    },
    async readLine() {
      for (;;) {
        const nl = buffered.indexOf('\n');
        if (nl !== -1) return buffered.slice(0, nl);
        if (ended) return undefined;
        await changed();
      }
    },
    async readLines() {
      while (!ended) await changed();
      return buffered.split('\n').filter((l) => l.trim() !== '');
    },
    stderrTail() {
      return tail.trim();
    },
    async close() {
      for (const s of [stderr, sync, startPipe, ...(attach ? [attach] : [])]) s.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        // Only reached after a kill on timeout/abort: wait for the reaping so no zombie is left.
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000).unref())]);
      }
    },
  };
}

interface Bound {
  /** Rejects with CommandError on timeout or CanceledError on abort, and runs the killer. */
  race<T>(p: Promise<T>): Promise<T>;
  clear(): void;
  /** Resolves when a kill the bound started has finished. */
  killed(): Promise<void>;
}

function bound(
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
  command: string,
  kill: () => Promise<void>,
): Bound {
  let fail: ((err: Error) => void) | undefined;
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  failed.catch(() => undefined);
  let killing: Promise<void> = Promise.resolve();
  // Reject first, then kill: the kill makes the process exit, and that exit must not win the
  // race and hide the reason (timeout or cancel) behind a bare "killed by SIGKILL".
  const fire = (err: Error): void => {
    fail?.(err);
    killing = kill().catch(() => undefined);
  };
  // Node fires a longer timer at once (TimeoutOverflowWarning): past ~24.8 days, conmon's -T alone
  // bounds the command.
  const timer =
    timeoutMs === undefined || timeoutMs > MAX_TIMER_MS
      ? undefined
      : setTimeout(() => {
          fire(new CommandError(command, undefined, `timed out after ${timeoutMs} ms; killed it`));
        }, timeoutMs);
  const onAbort = (): void => {
    fire(new CanceledError(`${command} was cancelled`, { cause: signal?.reason }));
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  return {
    race: (p) => Promise.race([p, failed]),
    clear() {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    },
    killed: () => killing,
  };
}

interface SyncMessage {
  value: number;
  message?: string;
}

/** `{"pid": N}`, `{"exit_code": N, "message": "…"}` or (with --api-version) `{"data": N}`. */
export function parseSyncLine(line: string, command: string): SyncMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch (err) {
    throw new CommandError(
      command,
      undefined,
      `unparsable sync message ${JSON.stringify(line.slice(0, 200))}`,
      {
        cause: err,
      },
    );
  }
  if (typeof raw === 'object' && raw !== null) {
    const r = raw as Record<string, unknown>;
    const value = r.pid ?? r.exit_code ?? r.data;
    if (typeof value === 'number' && Number.isInteger(value)) {
      return typeof r.message === 'string' ? { value, message: r.message } : { value };
    }
  }
  throw new CommandError(command, undefined, `unexpected sync message ${JSON.stringify(line.slice(0, 200))}`);
}

async function readPid(path: string): Promise<number | undefined> {
  try {
    const n = Number.parseInt((await readFile(path, 'utf8')).trim(), 10);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * SIGKILLs an exec's command and every process below the exec's conmon (`monitorPid`), leaving
 * nothing behind, not even a zombie. conmon is spared: it is their subreaper. Everything below
 * the command goes first, until /proc shows only zombies there; then the command, whose exit
 * hands those zombies to conmon just before conmon hears of it, reaps them all and exits.
 * (Killed the other way round, conmon may exit before a straggler dies, and the straggler then
 * becomes a zombie of the node's init.)
 */
async function killExecTree(monitorPid: number | undefined, execPidFile: string): Promise<void> {
  if (monitorPid === undefined) return;
  for (let round = 0; round < EXEC_KILL_ROUNDS; round++) {
    const execPid = await readPid(execPidFile);
    const alive = (await descendantsOf(monitorPid)).filter((p) => !p.zombie);
    const below = alive.filter((p) => p.pid !== execPid);
    if (below.length === 0) {
      // Only the command (or nothing) is left: its group goes, conmon reaps.
      if (execPid === undefined || alive.length === 0) return;
      killGroup(execPid);
    } else {
      for (const p of below) killProcess(p.pid);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** SIGKILLs one process; ESRCH is fine. */
function killProcess(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Whether `exited` settles within `ms`. */
async function exitsWithin(exited: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((r) => {
    timer = setTimeout(() => {
      r(false);
    }, ms);
  });
  try {
    return await Promise.race([exited.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** SIGKILLs a process group led by `pid`, or just the process if it leads none; ESRCH is fine. */
export function killGroup(pid: number | undefined): void {
  if (pid === undefined || pid <= 0) return;
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
