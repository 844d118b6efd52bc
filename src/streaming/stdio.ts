/**
 * The transport-neutral shape of an exec or attach session: the client's streams as the SPDY or
 * WebSocket adapter provides them, and `runExec` / `runAttach`, which connect them to a process
 * in a container. Whatever happens, the session ends with one outcome on the error stream and
 * the process is not left behind (exec) or is left running (attach).
 */
import { Writable, type Readable } from 'node:stream';
import type { AttachedStreams, ExecSession } from '../container/manager.js';
import type { StreamOutcome } from './status.js';

export interface TerminalSize {
  width: number;
  height: number;
}

/** Terminal sizes from the client: kept (the latest) until someone listens. */
export class ResizeHub {
  private latest: TerminalSize | undefined;
  private readonly listeners: ((size: TerminalSize) => void)[] = [];

  push(size: TerminalSize): void {
    this.latest = size;
    for (const l of this.listeners) l(size);
  }

  on(listener: (size: TerminalSize) => void): void {
    this.listeners.push(listener);
  }

  /** The first size the client sends (or has sent), or undefined after `timeoutMs`. */
  first(timeoutMs: number): Promise<TerminalSize | undefined> {
    if (this.latest !== undefined) return Promise.resolve(this.latest);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        resolve(undefined);
      }, timeoutMs);
      this.on((size) => {
        clearTimeout(timer);
        resolve(size);
      });
    });
  }
}

/** How long a tty exec waits for the client's first terminal size before starting without one. */
const FIRST_SIZE_WAIT_MS = 1_000;

export interface StdioChannels {
  /** Bytes from the client; ends when the client half-closes stdin. */
  stdin: Readable | undefined;
  stdout: Writable | undefined;
  stderr: Writable | undefined;
  /** The sizes the client sends (tty sessions); undefined when it has no resize channel. */
  resize: ResizeHub | undefined;
  /** Writes the outcome on the error stream and closes the connection. */
  finish(outcome: StreamOutcome): Promise<void>;
  /** Resolves when the client has gone away (or the connection was closed). */
  readonly gone: Promise<void>;
}

/** What the session needs from the container engine. */
export interface StdioBackend {
  exec(
    id: string,
    cmd: string[],
    opts: { tty: boolean; stdin: boolean; consoleSize?: TerminalSize },
  ): Promise<ExecSession>;
  attach(
    id: string,
    opts: { stdin: boolean },
  ): Promise<AttachedStreams & { tty: boolean; resize(rows: number, cols: number): Promise<void> }>;
}

export interface ByteCounter {
  (direction: 'in' | 'out', bytes: number): void;
}

/** Copies `from` into `to` (or drains it), ending `to`; resolves when everything is written. */
function copyOut(from: Readable, to: Writable | undefined, count: ByteCounter): Promise<void> {
  const sink =
    to ??
    new Writable({
      write(_chunk, _enc, cb) {
        cb();
      },
    });
  return new Promise((resolve) => {
    from.on('data', (chunk: Buffer) => {
      count('out', chunk.length);
    });
    from.pipe(sink);
    const done = (): void => {
      resolve();
    };
    sink.once('finish', done);
    sink.once('close', done);
    sink.once('error', done);
    from.once('error', done);
  });
}

function copyIn(from: Readable | undefined, to: Writable | undefined, count: ByteCounter): void {
  if (from === undefined) {
    to?.end();
    return;
  }
  from.on('data', (chunk: Buffer) => {
    count('in', chunk.length);
  });
  if (to === undefined) {
    from.resume();
    return;
  }
  to.on('error', () => undefined);
  from.pipe(to);
}

/**
 * Wires a process's stdio to the client: its stdin, its output, and (for a terminal) the client's
 * resizes. Resolves when the output has been written out.
 */
function pipeStdio(
  channels: StdioChannels,
  proc: AttachedStreams,
  resize: ((rows: number, cols: number) => Promise<void>) | undefined,
  count: ByteCounter,
  onResizeError: (err: unknown) => void,
): Promise<unknown> {
  copyIn(channels.stdin, proc.stdin, count);
  if (resize !== undefined) {
    channels.resize?.on((size) => {
      resize(size.height, size.width).catch(onResizeError);
    });
  }
  return Promise.all([
    copyOut(proc.stdout, channels.stdout, count),
    copyOut(proc.stderr, channels.stderr, count),
  ]);
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A session that could not start: the client hears why. */
async function failed(channels: StdioChannels, err: unknown): Promise<StreamOutcome> {
  const outcome: StreamOutcome = { kind: 'error', message: errorMessage(err) };
  await channels.finish(outcome);
  return outcome;
}

export async function runExec(
  channels: StdioChannels,
  backend: StdioBackend,
  req: { containerId: string; cmd: string[]; tty: boolean; stdin: boolean },
  count: ByteCounter,
  onResizeError: (err: unknown) => void,
): Promise<StreamOutcome> {
  let session: ExecSession;
  try {
    // The pty gets the client's size when runc makes it; a resize after the start would race
    // the command (a quick `stty size` would see 0 0).
    const consoleSize =
      req.tty && channels.resize !== undefined ? await channels.resize.first(FIRST_SIZE_WAIT_MS) : undefined;
    session = await backend.exec(req.containerId, req.cmd, {
      tty: req.tty,
      stdin: req.stdin && channels.stdin !== undefined,
      ...(consoleSize !== undefined ? { consoleSize } : {}),
    });
  } catch (err) {
    return failed(channels, err);
  }
  const outputs = pipeStdio(
    channels,
    session,
    req.tty ? (rows, cols) => session.resize(rows, cols) : undefined,
    count,
    onResizeError,
  );
  // A client that goes away takes its process with it (never signal a pid after its exit).
  const state = { clientGone: false, exited: false };
  void channels.gone.then(() => {
    state.clientGone = true;
    if (!state.exited) session.kill();
  });
  let outcome: StreamOutcome;
  try {
    const code = await session.exit;
    outcome = code === 0 ? { kind: 'success' } : { kind: 'exit', code };
  } catch (err) {
    outcome = { kind: 'error', message: errorMessage(err) };
  }
  state.exited = true;
  // conmon closes the attach socket when the process ends; the relay then drains.
  await outputs;
  if (!state.clientGone) await channels.finish(outcome);
  return outcome;
}

export async function runAttach(
  channels: StdioChannels,
  backend: StdioBackend,
  req: { containerId: string; stdin: boolean },
  count: ByteCounter,
  onResizeError: (err: unknown) => void,
): Promise<StreamOutcome> {
  let attached: Awaited<ReturnType<StdioBackend['attach']>>;
  try {
    attached = await backend.attach(req.containerId, { stdin: req.stdin && channels.stdin !== undefined });
  } catch (err) {
    return failed(channels, err);
  }
  const outputs = pipeStdio(
    channels,
    attached,
    attached.tty ? (rows, cols) => attached.resize(rows, cols) : undefined,
    count,
    onResizeError,
  );
  const state = { clientGone: false };
  void channels.gone.then(() => {
    state.clientGone = true;
    // Detaching leaves the container running.
    attached.detach();
  });
  const end = await attached.ended;
  await outputs;
  const outcome: StreamOutcome =
    end.error === undefined || state.clientGone ? { kind: 'success' } : { kind: 'error', message: end.error };
  if (!state.clientGone) await channels.finish(outcome);
  return outcome;
}
