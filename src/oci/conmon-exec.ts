/**
 * Streaming exec through conmon's exec-attach mode (notes/conmon.md §3, "Exec with attach"):
 * `conmon --sync -e --exec-attach` creates an attach socket and ctl FIFO in the session
 * directory, waits until we are connected, then runs `runc exec` (with a pty from runc's console
 * socket when `terminal` is set; conmon receives it, which Node cannot). With `--sync` conmon
 * stays our child and reports the pid and then the exit status on the sync pipe, so nothing
 * outlives the session. Stateless: every path comes from the caller.
 */
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CommandError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { attachSocket, type AttachedStreams } from './attach-relay.js';
import { resizeTerminal } from './conmon-files.js';
import { killGroup, parseSyncLine, spawnConmon, type ConmonLogLevel } from './conmon.js';
import { runcErrorMessage } from './runc.js';

export interface ExecAttachOptions {
  conmonPath: string;
  runtimePath: string;
  runtimeRoot: string;
  /** Container id. */
  id: string;
  /** Names the session's attach-socket symlink; also in conmon's journald fields. */
  sessionId: string;
  /** OCI `process` object; `terminal` decides whether conmon makes a pty. */
  processSpec: Record<string, unknown>;
  stdin: boolean;
  /** An empty directory the caller creates and removes after `exit` settles. */
  workDir: string;
  systemdCgroup: boolean;
  logLevel?: ConmonLogLevel;
  log: Logger;
}

export interface ExecSession extends AttachedStreams {
  /** The command's pid on the host. */
  readonly pid: number;
  /** The exit status (128 + signal when killed); rejects with CommandError when runc failed. */
  readonly exit: Promise<number>;
  /** Resizes the pty (only with a terminal); rows/cols as the CRI resize stream gives them. */
  resize(rows: number, cols: number): Promise<void>;
  /** SIGKILLs the command (a client went away); `exit` then settles. */
  kill(): void;
}

const SETUP_TIMEOUT_MS = 30_000;

function execAttachArgs(o: ExecAttachOptions): string[] {
  // prettier-ignore
  const args = [
    '--api-version', '1',
    '-c', o.id,
    '-u', o.sessionId,
    '-n', o.sessionId,
    '-r', o.runtimePath,
    '-b', o.workDir,
    '-p', join(o.workDir, 'exec_pid'),
    '--exit-dir', join(o.workDir, 'exits'),
    '--full-attach',
    '-l', 'none',
    '--log-level', o.logLevel ?? 'info',
    '-e', '--exec-attach', '--sync',
    '--exec-process-spec', join(o.workDir, 'process.json'),
    '--runtime-arg', `--root=${o.runtimeRoot}`,
  ];
  if (o.processSpec.terminal === true) args.push('-t');
  if (o.stdin) args.push('-i');
  if (o.systemdCgroup) args.push('-s');
  return args;
}

/**
 * Starts the command and connects to it. Resolves once the command runs (its pid known), with
 * its output streams; rejects with CommandError when conmon or runc fails to start it.
 */
export async function execAttach(opts: ExecAttachOptions): Promise<ExecSession> {
  const command = `conmon (runc exec ${opts.id})`;
  await writeFile(join(opts.workDir, 'process.json'), JSON.stringify(opts.processSpec), { mode: 0o600 });
  await mkdir(join(opts.workDir, 'exits'), { mode: 0o700 });
  const args = execAttachArgs(opts);
  opts.log.debug({ argv: [opts.conmonPath, ...args], containerId: opts.id }, 'exec attach');
  const proc = await spawnConmon(opts.conmonPath, args, opts.workDir, command, { attachPipe: true });
  const attachPipe = proc.attachPipe;
  let streams: AttachedStreams | undefined;
  const timer = setTimeout(() => {
    killGroup(proc.child.pid);
  }, SETUP_TIMEOUT_MS);
  try {
    if (attachPipe === undefined) throw new CommandError(command, undefined, 'no attach pipe');
    // First byte: conmon creates the socket and FIFOs, then says so on the attach pipe.
    proc.startByte();
    const ready = await firstLine(attachPipe);
    if (ready === undefined) {
      throw new CommandError(
        command,
        undefined,
        proc.stderrTail() || 'conmon exited before its attach socket',
      );
    }
    streams = attachSocket(join(opts.workDir, 'attach'), {
      stdin: opts.stdin,
      debug: (f, m) => {
        opts.log.debug(f, m);
      },
    });
    // The relay must be connected before runc starts, or early output is lost.
    await streams.connected;
    // Second byte: the forked child execs runc.
    proc.start();
    const pidLine = await proc.readLine();
    if (pidLine === undefined) {
      throw new CommandError(command, undefined, proc.stderrTail() || 'conmon reported no pid');
    }
    const first = parseSyncLine(pidLine, command);
    if (first.value <= 0) {
      throw new CommandError(
        `runc exec ${opts.id}`,
        1,
        runcErrorMessage(first.message ?? (proc.stderrTail() || 'runc exec failed')),
      );
    }
    clearTimeout(timer);
    const pid = first.value;
    const s = streams;
    const exit = (async (): Promise<number> => {
      try {
        const lines = await proc.readLines();
        await proc.exited;
        const last = lines.at(-1);
        if (last === undefined || lines.length < 2) {
          throw new CommandError(command, undefined, proc.stderrTail() || 'conmon reported no exit status');
        }
        const msg = parseSyncLine(last, command);
        if (msg.value === -1 && msg.message !== undefined) {
          throw new CommandError(`runc exec ${opts.id}`, 1, runcErrorMessage(msg.message));
        }
        return msg.value;
      } finally {
        await proc.close();
      }
    })();
    exit.catch(() => undefined);
    return {
      ...s,
      pid,
      exit,
      resize: (rows, cols) => resizeTerminal(opts.workDir, rows, cols),
      kill() {
        killGroup(pid);
      },
    };
  } catch (err) {
    clearTimeout(timer);
    streams?.detach();
    killGroup(proc.child.pid);
    await proc.close();
    throw err;
  }
}

function firstLine(pipe: NodeJS.ReadableStream): Promise<string | undefined> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl !== -1) {
        cleanup();
        resolve(buf.slice(0, nl));
      }
    };
    const onEnd = (): void => {
      cleanup();
      resolve(undefined);
    };
    const cleanup = (): void => {
      pipe.off('data', onData);
      pipe.off('end', onEnd);
      pipe.off('close', onEnd);
    };
    pipe.on('data', onData);
    pipe.on('end', onEnd);
    pipe.on('close', onEnd);
  });
}
