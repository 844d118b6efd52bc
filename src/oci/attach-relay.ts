/**
 * A client of a conmon attach socket (AF_UNIX SOCK_SEQPACKET, notes/conmon.md §5). Node.js cannot
 * open SEQPACKET sockets, so bin/crisp-attach-relay holds the connection and frames each packet
 * on its stdout as `[stream id][u32 length][data]`; this module splits that back into stdout and
 * stderr streams. Writing to `stdin` reaches the process; ending it closes the process's stdin
 * (unless conmon keeps it open). `detach()` drops the connection and leaves the process running.
 */
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { startPiped, type DebugLog } from '../util/command.js';

/** crisp's helper that relays a SEQPACKET attach socket over pipes (bin/crisp-attach-relay). */
const ATTACH_RELAY = fileURLToPath(new URL('../../../bin/crisp-attach-relay', import.meta.url));

const STREAM_CONNECTED = 0;
const STREAM_STDOUT = 2;
const STREAM_STDERR = 3;
const HEADER = 5;
/** conmon never sends more than 8192 bytes per packet; anything longer is not the relay talking. */
const MAX_PACKET = 64 * 1024;

export interface AttachedStreams {
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Present when the caller asked for stdin. */
  readonly stdin: Writable | undefined;
  /**
   * Resolves when the connection is gone: conmon closed it (the process ended), the caller
   * detached, or the relay failed. `error` says why when it was not a clean end.
   */
  readonly ended: Promise<{ error?: string }>;
  /** Resolves when the relay has connected (or gave up: then `ended` says why). */
  readonly connected: Promise<void>;
  /** Drops the connection (the process keeps running). */
  detach(): void;
}

/** Splits the relay's framed stdout into the two output streams. */
export class RelayDemuxer {
  private pending: Buffer = Buffer.alloc(0);

  constructor(
    private readonly stdout: Writable,
    private readonly stderr: Writable,
    private readonly onConnected: () => void = () => undefined,
  ) {}

  /** Feeds relay output; returns an error message when the framing is broken. */
  push(chunk: Buffer): string | undefined {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= HEADER) {
      const kind = this.pending[0];
      const length = this.pending.readUInt32BE(1);
      if (length > MAX_PACKET) return `attach relay sent a ${length}-byte packet`;
      if (this.pending.length < HEADER + length) break;
      const data = this.pending.subarray(HEADER, HEADER + length);
      this.pending = this.pending.subarray(HEADER + length);
      if (kind === STREAM_CONNECTED) this.onConnected();
      else if (kind === STREAM_STDOUT) this.stdout.write(data);
      else if (kind === STREAM_STDERR) this.stderr.write(data);
      // Stream id 1 (stdin) is never sent; other ids are ignored like conmon's own clients do.
    }
    return undefined;
  }

  /** Whether a partial frame is left over at the end. */
  get truncated(): boolean {
    return this.pending.length > 0;
  }
}

export function attachSocket(
  socketPath: string,
  opts: { stdin: boolean; debug?: DebugLog },
): AttachedStreams {
  const child = startPiped(ATTACH_RELAY, [socketPath], opts.debug);
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let onConnected: () => void = () => undefined;
  const connected = new Promise<void>((resolve) => {
    onConnected = resolve;
  });
  const demux = new RelayDemuxer(stdout, stderr, onConnected);
  const state: { failure?: string; detached: boolean } = { detached: false };
  child.stdout.on('data', (chunk: Buffer) => {
    const bad = demux.push(chunk);
    if (bad !== undefined && state.failure === undefined) {
      state.failure = bad;
      child.kill();
    }
  });
  if (!opts.stdin) child.stdin.end();
  const ended = (async (): Promise<{ error?: string }> => {
    const exit = await child.exited;
    // stdout may still hold relay output after the exit; let it drain before ending the streams.
    if (!child.stdout.readableEnded && !child.stdout.destroyed) {
      await new Promise<void>((resolve) => {
        child.stdout.once('close', resolve);
        child.stdout.once('end', resolve);
      });
    }
    onConnected();
    stdout.end();
    stderr.end();
    if (state.failure !== undefined) return { error: state.failure };
    if (state.detached || exit.exitCode === 0) return {};
    return {
      error:
        exit.stderrTail || `attach relay ended with ${exit.signal ?? `exit code ${String(exit.exitCode)}`}`,
    };
  })();
  return {
    stdout,
    stderr,
    stdin: opts.stdin ? child.stdin : undefined,
    ended,
    connected,
    detach() {
      state.detached = true;
      child.kill();
    },
  };
}
