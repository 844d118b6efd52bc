/**
 * The files a running conmon exposes or leaves behind (notes/conmon.md §5): the `ctl` FIFO in the
 * bundle (terminal resize, log reopen), the exit file `<exit dir>/<id>` and the `oom` marker in the
 * persist dir. Stateless except for one thing: writes to the same ctl FIFO are queued with a short
 * pause between them, because conmon 2.1.6 handles several lines that arrive in one read as the
 * first line repeated (fixed in 2.2.0), so two messages must never reach it back to back.
 */
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { DeadlineExceededError, InternalError, InvalidArgumentError, UnavailableError } from '../errors.js';

/** How long the next ctl message to the same FIFO waits after one was written. */
const CTL_PAUSE_MS = 50;
const ctlQueues = new Map<string, Promise<void>>();

/** ctl message types (conmon ctrl.c). */
const CTL_RESIZE = 1;
const CTL_REOPEN_LOG = 2;

export interface ReopenLogOptions {
  /** When given, wait until conmon has re-created this file (kubelet expects it to exist). */
  logPath?: string;
  /** Bound for that wait; default 5 s. */
  timeoutMs?: number;
}

/**
 * Asks conmon to close and reopen the container's log file (kubelet's ReopenContainerLog, after it
 * renamed the file for rotation). Throws UnavailableError when no conmon reads `<bundle>/ctl`.
 */
export async function reopenLog(bundle: string, opts: ReopenLogOptions = {}): Promise<void> {
  await writeCtl(bundle, `${CTL_REOPEN_LOG} 0 0\n`);
  if (opts.logPath === undefined) return;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      await stat(opts.logPath);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new InternalError(`cannot stat ${opts.logPath}`, { cause: err });
      }
    }
    if (performance.now() >= deadline) {
      throw new DeadlineExceededError(`conmon did not re-create ${opts.logPath} within ${timeoutMs} ms`);
    }
    await delay(20);
  }
}

/** Resizes the container's terminal (only meaningful for a container created with a terminal). */
export async function resizeTerminal(bundle: string, rows: number, cols: number): Promise<void> {
  checkDimension('rows', rows);
  checkDimension('cols', cols);
  await writeCtl(bundle, `${CTL_RESIZE} ${rows} ${cols}\n`);
}

function checkDimension(field: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) {
    throw new InvalidArgumentError(field, `must be an integer from 0 to 65535, got ${n}`);
  }
}

/**
 * Writes one message to `<bundle>/ctl` with one open/write/close, queued behind (and spaced from)
 * earlier messages to the same FIFO. The open is O_NONBLOCK so it never hangs: with no reader it
 * fails at once with ENXIO.
 */
function writeCtl(bundle: string, message: string): Promise<void> {
  const path = join(bundle, 'ctl');
  const previous = ctlQueues.get(path) ?? Promise.resolve();
  const write = previous.then(() => writeFifoOnce(path, message));
  const tail = write.then(
    () => delay(CTL_PAUSE_MS),
    () => undefined,
  );
  ctlQueues.set(path, tail);
  void tail.then(() => {
    if (ctlQueues.get(path) === tail) ctlQueues.delete(path);
  });
  return write;
}

async function writeFifoOnce(path: string, message: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENXIO' || code === 'ENOENT') {
      throw new UnavailableError(
        `conmon is not listening on ${path} (${code === 'ENXIO' ? 'no reader' : 'no such file'}): has the container's monitor exited?`,
        { cause: err },
      );
    }
    throw new InternalError(`cannot open ${path}`, { cause: err });
  }
  try {
    const st = await handle.stat();
    if (!st.isFIFO()) throw new InternalError(`${path} is not a FIFO`);
    // Shorter than PIPE_BUF, so the write is atomic: all of it or EAGAIN.
    const { bytesWritten } = await handle.write(message);
    if (bytesWritten !== Buffer.byteLength(message)) {
      throw new InternalError(`short write to ${path}: ${bytesWritten} bytes`);
    }
  } catch (err) {
    if (err instanceof InternalError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EPIPE') {
      throw new UnavailableError(`conmon is not reading ${path} (${code})`, { cause: err });
    }
    throw new InternalError(`cannot write ${path}`, { cause: err });
  } finally {
    await handle.close();
  }
}

export interface ExitFile {
  /** The exit status, or 128 + signal number when the process was killed by a signal. */
  exitCode: number;
  /** The file's mtime (when conmon wrote it), as CRI-O uses for FinishedAt. */
  finishedAt: Date;
  /** The same instant in nanoseconds since the epoch. */
  finishedAtNs: bigint;
}

/**
 * Reads `<exitDir>/<id>`, which conmon writes when the container's process ends. Undefined when
 * the file does not exist yet, or is still empty (caught between conmon's create and write: read
 * again on the next event).
 */
export async function readExitFile(exitDir: string, id: string): Promise<ExitFile | undefined> {
  const path = join(exitDir, id);
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InternalError(`cannot read exit file ${path}`, { cause: err });
  }
  try {
    const text = (await handle.readFile('utf8')).trim();
    if (text === '') return undefined;
    if (!/^-?\d+$/.test(text))
      throw new InternalError(`exit file ${path} holds ${JSON.stringify(text.slice(0, 40))}`);
    const st = await handle.stat({ bigint: true });
    return {
      exitCode: Number(text),
      finishedAt: new Date(Number(st.mtimeNs / 1_000_000n)),
      finishedAtNs: st.mtimeNs,
    };
  } finally {
    await handle.close();
  }
}

/** True when conmon recorded an OOM kill for the container (`<persistDir>/oom` exists). */
export async function hasOomFile(persistDir: string): Promise<boolean> {
  const path = join(persistDir, 'oom');
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new InternalError(`cannot check ${path}`, { cause: err });
  }
}
