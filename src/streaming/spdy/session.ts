/**
 * A SPDY/3.1 session over an already upgraded socket, in the server or the client role, as used
 * by the CRI streaming protocols (exec, attach, port-forward) whose Go peers speak through
 * moby/spdystream.
 *
 * Deliberately missing: flow control. Go's spdystream ignores SETTINGS and WINDOW_UPDATE and never
 * sends WINDOW_UPDATE, so honouring send windows would stall every stream after 64 KiB. This
 * session never sends SETTINGS or WINDOW_UPDATE and ignores the peer's.
 *
 * Ordering: every outgoing frame goes through one queue, built and written one at a time, so a
 * frame whose header block is still being compressed can never be overtaken (the shared deflate
 * context must see blocks in wire order, and DATA must not precede its SYN). Incoming frames are
 * likewise handled strictly in order, waiting for each header block to inflate.
 *
 * Backpressure:
 * - Outgoing: when socket.write() returns false the queue stops until 'drain', and a stream's
 *   write callback only runs once its last frame has been handed to the socket, so a writer that
 *   respects write()'s return value (or uses pipe/pipeline) is slowed to the socket's pace.
 * - Incoming: without flow control there is no way to push back on one stream. Data is always
 *   pushed into the stream's readable buffer (past its highWaterMark if need be); when the bytes
 *   buffered across all streams (plus frames waiting to be handled) exceed `maxBufferedIncoming`
 *   (8 MiB), the socket is paused, and it resumes once readers bring the total back under it. One
 *   stream that nobody reads can therefore stall the whole connection once it holds 8 MiB.
 *
 * Errors:
 * - Malformed input, protocol violations, or an exception thrown by a 'stream' listener end the
 *   session: a best-effort GOAWAY (PROTOCOL_ERROR, or INTERNAL_ERROR for our own failures) is
 *   written, the socket is closed, and 'close' is emitted with the error. Nothing is thrown out of
 *   socket event handlers, and socket errors are always handled.
 * - Streams never emit 'error' on the session's account. A peer RST_STREAM emits 'reset' (with the
 *   status) on the stream and then destroys it without an error; `resetStatus` keeps the status.
 *   When the session ends, every stream that is not fully closed is destroyed without an error
 *   (unread data is discarded), and pending openStream()/ping() calls reject.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Duplex } from 'node:stream';
import {
  FLAG_FIN,
  FLAG_UNIDIRECTIONAL,
  FrameDecoder,
  GoAwayStatus,
  MAX_STREAM_ID,
  RstStatus,
  SpdyProtocolError,
  encodeDataFrame,
  encodeGoAway,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeSynReply,
  encodeSynStream,
  type DataFrame,
  type GoAwayFrame,
  type HeadersFrame,
  type PingFrame,
  type RstStreamFrame,
  type SpdyFrame,
  type SynReplyFrame,
  type SynStreamFrame,
} from './frames.js';
import { HeaderCompressor, HeaderDecompressor } from './header-block.js';

export { RstStatus, GoAwayStatus, SpdyProtocolError } from './frames.js';

export interface SpdySessionOptions {
  isServer: boolean;
  /** Bytes already read from the socket after the HTTP upgrade (node's 'upgrade' event `head`). */
  head?: Buffer;
  /** Max concurrent peer-opened streams; beyond that new SYN_STREAMs get RST REFUSED_STREAM. Default 1000. */
  maxStreams?: number;
  /** Optional debug logger: (obj, msg) => void */
  onDebug?: (fields: Record<string, unknown>, msg: string) => void;
  /** Incoming bytes buffered across all streams above which the socket is paused. Default 8 MiB. */
  maxBufferedIncoming?: number;
  /** Largest decompressed header block accepted. Default 256 KiB. */
  maxHeaderBlockSize?: number;
  /** Most headers per block. Default 1024. */
  maxHeaders?: number;
  /** Largest control frame accepted. Default 1 MiB. */
  maxControlFrameLength?: number;
  /** After goAway() ends our side, how long to wait for the peer to close before destroying. Default 5 s. */
  closeTimeoutMs?: number;
}

/** Largest DATA payload this side sends; writes are split into frames of at most this size. */
export const MAX_OUTGOING_DATA_FRAME = 16 * 1024;
const DEFAULT_MAX_STREAMS = 1000;
const DEFAULT_MAX_BUFFERED_INCOMING = 8 * 1024 * 1024;
const DEFAULT_CLOSE_TIMEOUT_MS = 5000;
/** After a session error, how long the GOAWAY gets to leave before the socket is destroyed. */
const ERROR_LINGER_MS = 250;
/** How many recently reset stream ids to remember, so stray frames for them are dropped quietly. */
const RESET_MEMORY = 1024;
const EMPTY = Buffer.alloc(0);

/** openStream() rejected because the peer reset the stream. */
export class SpdyStreamResetError extends Error {
  constructor(
    readonly streamId: number,
    readonly status: number,
  ) {
    super(`SPDY stream ${streamId} was reset by the peer (status ${status})`);
    this.name = 'SpdyStreamResetError';
  }
}

/** The session ended (or is going away) before the operation could complete. */
export class SpdySessionClosedError extends Error {
  constructor(message = 'SPDY session is closed', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SpdySessionClosedError';
  }
}

/** Per-stream protocol state, shared by the session and its SpdyStream. */
interface StreamState {
  readonly id: number;
  readonly peerOpened: boolean;
  headers: Record<string, string>;
  /** SYN_REPLY sent (peer-opened) or received (self-opened). */
  replied: boolean;
  /** The peer has half-closed: FIN received. */
  remoteFin: boolean;
  /** Our FIN is queued (or implied); nothing more may be sent. */
  localFin: boolean;
  /** Our FIN has been handed to the socket. */
  localFinWritten: boolean;
  /** The peer knows the stream: it opened it, or our SYN_STREAM has been written. */
  announced: boolean;
  /** RST_STREAM sent or received. */
  reset: boolean;
  resetStatus: number | undefined;
  /** No longer in the session's stream table. */
  retired: boolean;
  stream: SpdyStream;
  /** Pending openStream() settlement, for self-opened streams awaiting SYN_REPLY. */
  open: { resolve: (s: SpdyStream) => void; reject: (err: Error) => void } | undefined;
}

/** What a stream needs from its session; kept off the session's public surface. */
interface StreamHost {
  accept(state: StreamState, headers: Readonly<Record<string, string>>): void;
  reset(state: StreamState, status: number): void;
  write(state: StreamState, chunk: Buffer, cb: (err?: Error | null) => void): void;
  final(state: StreamState, cb: (err?: Error | null) => void): void;
  read(state: StreamState): void;
  destroyed(state: StreamState): void;
}

/**
 * One SPDY stream. Readable side: DATA payloads from the peer, 'end' on the peer's FIN. Writable
 * side: each write becomes DATA frames (split at 16 KiB), end() sends an empty DATA frame with FIN
 * after the pending writes. Extra event: 'reset' (status: number) before a peer RST destroys it.
 *
 * The stream closes itself once both sides have finished and its data has been read. Destroying
 * it earlier sends RST_STREAM CANCEL. Beware that `for await (… of stream)` destroys the stream
 * when the peer's data ends, cancelling our half if it is still being written; use
 * `stream.iterator({ destroyOnReturn: false })` or 'data'/'end' events on streams you reply on.
 */
export class SpdyStream extends Duplex {
  readonly id: number;
  /** True if the peer opened this stream (SYN_STREAM received). */
  readonly peerOpened: boolean;
  readonly #state: StreamState;
  readonly #host: StreamHost;

  /** Created by SpdySession only. */
  constructor(state: Omit<StreamState, 'stream'>, host: StreamHost) {
    super({ allowHalfOpen: true });
    this.id = state.id;
    this.peerOpened = state.peerOpened;
    const full = state as StreamState;
    full.stream = this;
    this.#state = full;
    this.#host = host;
  }

  /** Headers of the SYN_STREAM (peer-opened) or SYN_REPLY (self-opened), names lowercased; multi-values joined with '\0' as received. */
  get headers(): Readonly<Record<string, string>> {
    return this.#state.headers;
  }

  /** RST_STREAM status if the stream was reset by either side. */
  get resetStatus(): number | undefined {
    return this.#state.resetStatus;
  }

  /**
   * Server side of a peer-opened stream: send SYN_REPLY (idempotent; no-op for self-opened or
   * closed streams). A write or end() before accept() accepts with no headers first.
   * Throws RangeError for an empty header name.
   */
  accept(headers: Record<string, string> = {}): void {
    this.#host.accept(this.#state, headers);
  }

  /** Send RST_STREAM with the status (default CANCEL) and destroy locally. */
  reset(status: number = RstStatus.CANCEL): void {
    this.#host.reset(this.#state, status);
  }

  override _read(): void {
    this.#host.read(this.#state);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#host.write(this.#state, chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#host.final(this.#state, cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#host.destroyed(this.#state);
    cb(err);
  }
}

/** An outgoing frame: `build` runs when the frame reaches the head of the queue; null skips it. */
interface OutItem {
  build: () => Buffer | null | Promise<Buffer | null>;
  done?: (err?: Error) => void;
}

interface PendingPing {
  start: number;
  timer: NodeJS.Timeout;
  resolve: (ms: number) => void;
  reject: (err: Error) => void;
}

export interface SpdySessionEvents {
  /** A peer-opened stream, after its SYN_STREAM header block has been decoded. */
  stream: [stream: SpdyStream];
  /** The session ended; `err` is set if it ended because of a protocol or socket error. */
  close: [err?: Error];
  /** The peer sent GOAWAY. */
  goaway: [lastGoodStreamId: number, status: number];
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export class SpdySession extends EventEmitter<SpdySessionEvents> {
  private readonly socket: Duplex;
  private readonly isServer: boolean;
  private readonly maxStreams: number;
  private readonly maxBufferedIncoming: number;
  private readonly closeTimeoutMs: number;
  private readonly onDebug: SpdySessionOptions['onDebug'];
  private readonly decoder: FrameDecoder;
  private readonly compressor = new HeaderCompressor();
  private readonly decompressor: HeaderDecompressor;
  private readonly host: StreamHost;

  private readonly streams = new Map<number, StreamState>();
  private peerStreamCount = 0;
  private nextStreamId: number;
  private nextPingId: number;
  /** Highest stream id the peer has opened; reported in our GOAWAY. */
  private lastPeerStreamId = 0;
  private readonly recentlyReset = new Set<number>();
  private readonly pings = new Map<number, PendingPing>();

  private outQueue: OutItem[] = [];
  private pumping = false;
  /** No more frames may be written (GOAWAY done, or the session is over). */
  private outClosed = false;

  private inQueue: SpdyFrame[] = [];
  private inQueuedBytes = 0;
  private processing = false;
  /** The socket closed while received frames were still being processed. */
  private closeAfterProcessing = false;
  private readonly bufferedStreams = new Set<StreamState>();
  private readPaused = false;
  private peerEnded = false;

  private goAwaySent = false;
  private goAwayReceived = false;
  private isClosed = false;
  private closeEmitted = false;
  private error: Error | undefined;
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(socket: Duplex, opts: SpdySessionOptions) {
    super();
    this.socket = socket;
    this.isServer = opts.isServer;
    this.maxStreams = opts.maxStreams ?? DEFAULT_MAX_STREAMS;
    this.maxBufferedIncoming = opts.maxBufferedIncoming ?? DEFAULT_MAX_BUFFERED_INCOMING;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.onDebug = opts.onDebug;
    this.nextStreamId = this.isServer ? 2 : 1;
    this.nextPingId = this.isServer ? 2 : 1;
    this.decoder = new FrameDecoder(
      opts.maxControlFrameLength === undefined ? {} : { maxControlFrameLength: opts.maxControlFrameLength },
    );
    this.decompressor = new HeaderDecompressor({
      ...(opts.maxHeaderBlockSize === undefined ? {} : { maxHeaderBlockSize: opts.maxHeaderBlockSize }),
      ...(opts.maxHeaders === undefined ? {} : { maxHeaders: opts.maxHeaders }),
    });
    this.host = {
      accept: (state, headers) => {
        this.sendReply(state, headers);
      },
      reset: (state, status) => {
        this.resetStream(state, status);
      },
      write: (state, chunk, cb) => {
        this.writeData(state, chunk, cb);
      },
      final: (state, cb) => {
        this.finishStream(state, cb);
      },
      read: () => {
        this.updateReadPressure();
      },
      destroyed: (state) => {
        this.onStreamDestroyed(state);
      },
    };

    socket.on('error', (err) => {
      this.onSocketError(err);
    });
    socket.on('close', () => {
      this.onSocketClose();
    });
    socket.on('end', () => {
      this.onSocketEnd();
    });
    if (socket instanceof net.Socket) socket.setNoDelay(true);

    const head = opts.head;
    // Start reading on the next tick so the caller can attach 'stream' and 'close' listeners;
    // `head` goes first because it precedes everything still in the socket.
    process.nextTick(() => {
      if (socket.destroyed) {
        this.onSocketClose();
        return;
      }
      if (head && head.length > 0) this.onSocketData(head);
      socket.on('data', (chunk: Buffer) => {
        this.onSocketData(chunk);
      });
      if (!this.readPaused) socket.resume();
    });
  }

  /** True once the session has ended or is being torn down. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Resolves once the session has closed (at once if it already has). */
  whenClosed(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise((resolve) => {
      this.once('close', () => {
        resolve();
      });
    });
  }

  /** Number of streams not yet fully closed. */
  get activeStreams(): number {
    return this.streams.size;
  }

  /**
   * Opens a stream (client role, or server push). Resolves after the peer's SYN_REPLY; rejects on
   * RST (SpdyStreamResetError), GOAWAY, or session end (SpdySessionClosedError). With `fin`, the
   * SYN_STREAM half-closes our side at once.
   */
  openStream(headers: Record<string, string>, opts: { fin?: boolean } = {}): Promise<SpdyStream> {
    if (this.isClosed || this.outClosed || this.goAwaySent || this.goAwayReceived) {
      return Promise.reject(new SpdySessionClosedError('SPDY session is closed or going away'));
    }
    const id = this.nextStreamId;
    if (id > MAX_STREAM_ID) return Promise.reject(new SpdySessionClosedError('SPDY stream ids exhausted'));
    let raw: Buffer;
    try {
      raw = encodeHeaderBlock(headers);
    } catch (err) {
      return Promise.reject(toError(err));
    }
    this.nextStreamId += 2;
    const fin = opts.fin === true;
    const state = this.newStream(id, false, Object.create(null) as Record<string, string>);
    this.streams.set(id, state);
    const result = new Promise<SpdyStream>((resolve, reject) => {
      state.open = { resolve, reject };
    });
    if (fin) state.localFin = true;
    this.enqueue({
      build: async () => {
        if (state.reset) return null;
        const block = await this.compressor.compressRaw(raw);
        return encodeSynStream({
          streamId: id,
          associatedStreamId: 0,
          priority: 0,
          slot: 0,
          flags: fin ? FLAG_FIN : 0,
          headerBlock: block,
        });
      },
      done: (err) => {
        if (err) {
          this.failOpen(state, err);
          return;
        }
        if (!state.reset) state.announced = true;
        if (fin) {
          state.localFinWritten = true;
          this.maybeRetire(state);
        }
      },
    });
    if (fin) state.stream.end();
    return result;
  }

  /** Sends a PING and resolves with the round-trip time in ms. */
  ping(timeoutMs = 10_000): Promise<number> {
    if (this.isClosed || this.outClosed) return Promise.reject(new SpdySessionClosedError());
    const id = this.nextPingId;
    this.nextPingId = this.nextPingId + 2 > 0xffffffff ? (this.isServer ? 2 : 1) : this.nextPingId + 2;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(new Error(`SPDY ping ${id} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pings.set(id, { start: performance.now(), timer, resolve, reject });
      this.enqueue(
        {
          build: () => encodePing(id),
          done: (err) => {
            if (!err) return;
            const p = this.pings.get(id);
            if (!p) return;
            clearTimeout(p.timer);
            this.pings.delete(id);
            reject(err);
          },
        },
        true,
      );
    });
  }

  /**
   * Sends GOAWAY (with the last peer stream id), then ends the socket once every frame queued
   * before it has been written. From now on new peer streams are ignored. Resolves when our side
   * of the socket is finished (or the session is already over); if the peer has not closed
   * within `closeTimeoutMs`, the socket is destroyed.
   */
  goAway(status: number = GoAwayStatus.OK): Promise<void> {
    if (this.isClosed || this.outClosed) return Promise.resolve();
    this.goAwaySent = true;
    return new Promise<void>((resolve) => {
      this.enqueue({
        build: () => encodeGoAway(this.lastPeerStreamId, status),
        done: () => {
          this.endOutput(resolve);
        },
      });
    });
  }

  /** Destroys the socket and all streams immediately; 'close' follows with `err`. */
  destroy(err?: Error): void {
    if (err && !this.error) this.error = err;
    this.teardown();
    this.socket.destroy();
  }

  // -------------------------------------------------------------------------------------------
  // Outgoing

  /**
   * Queues a frame. `urgent` puts it at the front: only for frames with no ordering ties (PING),
   * never for anything compressed or stream-related.
   */
  private enqueue(item: OutItem, urgent = false): void {
    if (this.outClosed) {
      item.done?.(new SpdySessionClosedError());
      return;
    }
    if (urgent) this.outQueue.unshift(item);
    else this.outQueue.push(item);
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      for (;;) {
        const item = this.outQueue.shift();
        if (!item) break;
        if (this.outClosed) {
          item.done?.(new SpdySessionClosedError());
          continue;
        }
        let frame: Buffer | null;
        try {
          const built = item.build();
          frame = built instanceof Promise ? await built : built;
        } catch (err) {
          item.done?.(toError(err));
          this.sessionError(
            new SpdyProtocolError(
              `failed to build a SPDY frame: ${toError(err).message}`,
              GoAwayStatus.INTERNAL_ERROR,
              {
                cause: err,
              },
            ),
          );
          continue;
        }
        if (frame === null) {
          item.done?.();
          continue;
        }
        // Re-read: the session may have ended while the frame was being built.
        if (this.outputClosed()) {
          item.done?.(new SpdySessionClosedError());
          continue;
        }
        if (!this.socket.write(frame) && !(await this.waitDrain())) {
          item.done?.(new SpdySessionClosedError());
          continue;
        }
        item.done?.();
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Resolves true on 'drain', false if the socket closes first. */
  private waitDrain(): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      if (this.socket.destroyed) {
        resolve(false);
        return;
      }
      const onDrain = (): void => {
        cleanup();
        resolve(true);
      };
      const onClose = (): void => {
        cleanup();
        resolve(false);
      };
      const cleanup = (): void => {
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
      };
      this.socket.on('drain', onDrain);
      this.socket.on('close', onClose);
    });
  }

  /** Ends our side of the socket after the queue; the session closes when the socket does. */
  private endOutput(onFinished?: () => void): void {
    if (this.outClosed) {
      onFinished?.();
      return;
    }
    this.outClosed = true;
    for (const item of this.outQueue.splice(0)) item.done?.(new SpdySessionClosedError());
    if (this.socket.writableEnded || this.socket.destroyed) {
      onFinished?.();
    } else {
      this.socket.end(() => onFinished?.());
    }
    this.armCloseTimer(this.closeTimeoutMs);
    if (onFinished) this.socket.once('close', onFinished);
  }

  private armCloseTimer(ms: number): void {
    if (this.closeTimer) return;
    this.closeTimer = setTimeout(() => {
      this.socket.destroy();
    }, ms);
    this.closeTimer.unref();
  }

  /** Queues a RST_STREAM; `state` lets a stream whose SYN_STREAM never went out skip it. */
  private sendRst(streamId: number, status: number, state?: StreamState): void {
    this.rememberReset(streamId);
    this.enqueue({ build: () => (state && !state.announced ? null : encodeRstStream(streamId, status)) });
  }

  private rememberReset(streamId: number): void {
    this.recentlyReset.add(streamId);
    if (this.recentlyReset.size > RESET_MEMORY) {
      const oldest = this.recentlyReset.values().next();
      if (oldest.done !== true) this.recentlyReset.delete(oldest.value);
    }
  }

  private sendReply(state: StreamState, headers: Readonly<Record<string, string>>): void {
    if (!state.peerOpened || state.replied || state.reset || this.outClosed) return;
    const raw = encodeHeaderBlock(headers);
    state.replied = true;
    this.enqueue({
      // A stream reset before its turn gets no reply; the compressor is only touched for frames
      // that are really written, keeping both sides' contexts in step.
      build: async () =>
        state.reset ? null : encodeSynReply(state.id, 0, await this.compressor.compressRaw(raw)),
    });
  }

  private writeData(state: StreamState, chunk: Buffer, cb: (err?: Error | null) => void): void {
    if (state.reset || state.localFin || this.outClosed) {
      // E.g. a write after goAway(): the stream is destroyed first, so the error reaches only the
      // write callback and is never emitted as 'error'.
      this.afterStreamWrite(
        state,
        new SpdySessionClosedError(`SPDY stream ${state.id} can no longer be written`),
        cb,
      );
      return;
    }
    if (state.peerOpened && !state.replied) this.sendReply(state, {});
    if (chunk.length === 0) {
      cb();
      return;
    }
    for (let off = 0; off < chunk.length; off += MAX_OUTGOING_DATA_FRAME) {
      const piece = chunk.subarray(off, Math.min(off + MAX_OUTGOING_DATA_FRAME, chunk.length));
      const last = off + MAX_OUTGOING_DATA_FRAME >= chunk.length;
      this.enqueue({
        build: () => (state.reset ? null : encodeDataFrame(state.id, 0, piece)),
        ...(last
          ? {
              done: (err?: Error) => {
                this.afterStreamWrite(state, err, cb);
              },
            }
          : {}),
      });
    }
  }

  /** Completes a write; on failure destroys the stream first so that no 'error' is emitted. */
  private afterStreamWrite(
    state: StreamState,
    err: Error | undefined,
    cb: (err?: Error | null) => void,
  ): void {
    if (err && !state.stream.destroyed) state.stream.destroy();
    cb(err);
  }

  private finishStream(state: StreamState, cb: (err?: Error | null) => void): void {
    if (state.localFin || state.reset) {
      cb();
      return;
    }
    if (this.outClosed) {
      this.afterStreamWrite(state, new SpdySessionClosedError(), cb);
      return;
    }
    if (state.peerOpened && !state.replied) this.sendReply(state, {});
    state.localFin = true;
    this.enqueue({
      build: () => (state.reset ? null : encodeDataFrame(state.id, FLAG_FIN, EMPTY)),
      done: (err) => {
        if (!err) {
          state.localFinWritten = true;
          this.maybeRetire(state);
        }
        this.afterStreamWrite(state, err, cb);
      },
    });
  }

  // -------------------------------------------------------------------------------------------
  // Stream bookkeeping

  private newStream(id: number, peerOpened: boolean, headers: Record<string, string>): StreamState {
    const state: Omit<StreamState, 'stream'> = {
      id,
      peerOpened,
      headers,
      replied: false,
      remoteFin: false,
      localFin: false,
      localFinWritten: false,
      announced: peerOpened,
      reset: false,
      resetStatus: undefined,
      retired: false,
      open: undefined,
    };
    new SpdyStream(state, this.host);
    return state as StreamState;
  }

  private retire(state: StreamState): void {
    if (state.retired) return;
    state.retired = true;
    this.streams.delete(state.id);
    if (state.peerOpened) this.peerStreamCount--;
  }

  private maybeRetire(state: StreamState): void {
    if (state.remoteFin && state.localFinWritten) this.retire(state);
  }

  private failOpen(state: StreamState, err: Error): void {
    const open = state.open;
    state.open = undefined;
    open?.reject(err);
  }

  /** Local reset: RST to the peer (unless the stream is already over), then destroy. */
  private resetStream(state: StreamState, status: number): void {
    if (!state.reset && !state.retired && !this.isClosed) {
      state.reset = true;
      state.resetStatus = status;
      this.sendRst(state.id, status, state);
    }
    this.retire(state);
    this.failOpen(state, new SpdySessionClosedError(`SPDY stream ${state.id} was reset locally`));
    if (!state.stream.destroyed) state.stream.destroy();
  }

  private onStreamDestroyed(state: StreamState): void {
    // A stream destroyed by its user before both sides finished is cancelled on the wire.
    if (!state.retired && !state.reset && !this.isClosed) {
      state.reset = true;
      state.resetStatus = RstStatus.CANCEL;
      this.sendRst(state.id, RstStatus.CANCEL, state);
    }
    this.retire(state);
    this.failOpen(state, new SpdySessionClosedError(`SPDY stream ${state.id} was destroyed`));
    this.bufferedStreams.delete(state);
    this.updateReadPressure();
  }

  private onRemoteFin(state: StreamState): void {
    if (state.remoteFin) return;
    state.remoteFin = true;
    state.stream.push(null);
    this.maybeRetire(state);
  }

  private isPeerStreamId(id: number): boolean {
    return (id % 2 === 1) === this.isServer;
  }

  // -------------------------------------------------------------------------------------------
  // Incoming

  private onSocketData(chunk: Buffer): void {
    if (this.isClosed) return;
    let frames: SpdyFrame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.sessionError(toError(err));
      return;
    }
    for (const frame of frames) {
      if (frame.type === 'data') this.inQueuedBytes += frame.data.length;
      this.inQueue.push(frame);
    }
    void this.processIncoming();
    this.updateReadPressure();
  }

  private async processIncoming(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      while (!this.isClosed) {
        const frame = this.inQueue.shift();
        if (!frame) break;
        switch (frame.type) {
          case 'data':
            this.inQueuedBytes -= frame.data.length;
            this.onData(frame);
            break;
          case 'syn_stream':
          case 'syn_reply':
          case 'headers': {
            // Always inflate, even for frames about to be refused or ignored, to keep the shared
            // context in step with the peer's.
            const headers = await this.decompressor.decompress(frame.headerBlock);
            if (this.sessionOver()) return;
            if (frame.type === 'syn_stream') this.onSynStream(frame, headers);
            else if (frame.type === 'syn_reply') this.onSynReply(frame, headers);
            else this.onHeaders(frame);
            break;
          }
          case 'rst_stream':
            this.onRstStream(frame);
            break;
          case 'ping':
            this.onPing(frame);
            break;
          case 'goaway':
            this.onGoAway(frame);
            break;
          case 'settings':
          case 'window_update':
          case 'unknown':
            // Flow control and settings are deliberately ignored (see the file header).
            break;
        }
      }
    } catch (err) {
      this.sessionError(toError(err));
    } finally {
      this.processing = false;
      // Every way out of the loop (an early return included) hands a deferred close back.
      if (this.closeAfterProcessing && (this.isClosed || this.inQueue.length === 0)) {
        this.closeAfterProcessing = false;
        this.onSocketClose();
      }
    }
    if (this.isClosed) return;
    this.updateReadPressure();
    if (this.peerEnded && this.inQueue.length === 0) this.finishAfterPeerEnd();
  }

  private onData(frame: DataFrame): void {
    const state = this.streams.get(frame.streamId);
    if (!state) {
      if (!this.recentlyReset.has(frame.streamId)) {
        this.debug({ streamId: frame.streamId }, 'SPDY DATA for an unknown stream');
        this.sendRst(frame.streamId, RstStatus.INVALID_STREAM);
      }
      return;
    }
    if (state.remoteFin) {
      this.resetStream(state, RstStatus.STREAM_ALREADY_CLOSED);
      return;
    }
    if (frame.data.length > 0) {
      state.stream.push(frame.data);
      this.bufferedStreams.add(state);
    }
    if (frame.flags & FLAG_FIN) this.onRemoteFin(state);
  }

  private onSynStream(frame: SynStreamFrame, headers: Record<string, string>): void {
    const id = frame.streamId;
    if (!this.isPeerStreamId(id)) {
      throw new SpdyProtocolError(
        `SYN_STREAM with ${id % 2 === 1 ? 'odd' : 'even'} stream id ${id} from the peer`,
      );
    }
    if (id <= this.lastPeerStreamId) {
      throw new SpdyProtocolError(`SYN_STREAM id ${id} is not above the previous ${this.lastPeerStreamId}`);
    }
    this.lastPeerStreamId = id;
    if (this.goAwaySent || this.outClosed) {
      this.debug({ streamId: id }, 'SPDY SYN_STREAM after GOAWAY ignored');
      return;
    }
    if (this.peerStreamCount >= this.maxStreams || this.listenerCount('stream') === 0) {
      this.debug({ streamId: id, open: this.peerStreamCount }, 'SPDY stream refused');
      this.sendRst(id, RstStatus.REFUSED_STREAM);
      return;
    }
    const state = this.newStream(id, true, headers);
    this.streams.set(id, state);
    this.peerStreamCount++;
    if (frame.flags & FLAG_UNIDIRECTIONAL) {
      // We may not send on it, so there is nothing to reply and our side is already closed.
      state.replied = true;
      state.localFin = true;
      state.localFinWritten = true;
      state.stream.end();
    }
    if (frame.flags & FLAG_FIN) this.onRemoteFin(state);
    this.emit('stream', state.stream);
  }

  private onSynReply(frame: SynReplyFrame, headers: Record<string, string>): void {
    const state = this.streams.get(frame.streamId);
    if (!state) {
      if (!this.recentlyReset.has(frame.streamId)) this.sendRst(frame.streamId, RstStatus.INVALID_STREAM);
      return;
    }
    if (state.peerOpened) {
      this.resetStream(state, RstStatus.PROTOCOL_ERROR);
      return;
    }
    if (state.replied) {
      this.resetStream(state, RstStatus.STREAM_IN_USE);
      return;
    }
    state.replied = true;
    Object.assign(state.headers, headers);
    if (frame.flags & FLAG_FIN) this.onRemoteFin(state);
    const open = state.open;
    state.open = undefined;
    open?.resolve(state.stream);
  }

  private onHeaders(frame: HeadersFrame): void {
    // Extra headers are not used by the CRI protocols; only a FIN on them matters.
    const state = this.streams.get(frame.streamId);
    if (state && frame.flags & FLAG_FIN) this.onRemoteFin(state);
  }

  private onRstStream(frame: RstStreamFrame): void {
    const state = this.streams.get(frame.streamId);
    if (!state) return; // Never answer a RST with a RST.
    this.debug({ streamId: frame.streamId, status: frame.status }, 'SPDY stream reset by peer');
    state.reset = true;
    state.resetStatus = frame.status;
    this.rememberReset(state.id);
    this.retire(state);
    this.failOpen(state, new SpdyStreamResetError(state.id, frame.status));
    state.stream.emit('reset', frame.status);
    state.stream.destroy();
  }

  private onPing(frame: PingFrame): void {
    const peerInitiated = (frame.id % 2 === 1) === this.isServer;
    if (peerInitiated) {
      const id = frame.id;
      this.enqueue({ build: () => encodePing(id) }, true);
      return;
    }
    const pending = this.pings.get(frame.id);
    if (!pending) return; // An echo we did not ask for: ignore.
    this.pings.delete(frame.id);
    clearTimeout(pending.timer);
    pending.resolve(performance.now() - pending.start);
  }

  private onGoAway(frame: GoAwayFrame): void {
    this.debug({ lastGoodStreamId: frame.lastGoodStreamId, status: frame.status }, 'SPDY GOAWAY received');
    this.goAwayReceived = true;
    // Our streams above the peer's last good id were never processed by it.
    for (const state of [...this.streams.values()]) {
      if (!state.peerOpened && state.id > frame.lastGoodStreamId) {
        state.reset = true;
        this.retire(state);
        this.failOpen(state, new SpdySessionClosedError(`SPDY stream ${state.id} refused by GOAWAY`));
        state.stream.destroy();
      }
    }
    this.emit('goaway', frame.lastGoodStreamId, frame.status);
  }

  /** Pauses the socket while too much received data waits for readers; resumes below the limit. */
  private updateReadPressure(): void {
    if (this.isClosed) return;
    let total = this.inQueuedBytes;
    for (const state of this.bufferedStreams) {
      const n = state.stream.destroyed ? 0 : state.stream.readableLength;
      if (n === 0) this.bufferedStreams.delete(state);
      else total += n;
    }
    if (!this.readPaused && total > this.maxBufferedIncoming) {
      this.readPaused = true;
      this.debug({ buffered: total }, 'SPDY session paused reading');
      this.socket.pause();
    } else if (this.readPaused && total <= this.maxBufferedIncoming) {
      this.readPaused = false;
      this.debug({ buffered: total }, 'SPDY session resumed reading');
      this.socket.resume();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Socket lifecycle and errors

  private onSocketEnd(): void {
    if (this.isClosed) return;
    if (this.decoder.bufferedBytes > 0) {
      this.sessionError(
        new SpdyProtocolError(
          `connection closed in the middle of a frame (${this.decoder.bufferedBytes} bytes)`,
        ),
      );
      return;
    }
    this.peerEnded = true;
    if (!this.processing && this.inQueue.length === 0) this.finishAfterPeerEnd();
  }

  /** The peer sends nothing more: flush what we have queued, then end our side too. */
  private finishAfterPeerEnd(): void {
    this.enqueue({
      build: () => null,
      done: () => {
        this.endOutput();
      },
    });
  }

  private onSocketError(err: Error): void {
    this.debug({ err: err.message }, 'SPDY socket error');
    if (!this.error) this.error = err;
    this.teardown();
    this.socket.destroy();
  }

  private onSocketClose(): void {
    if (
      !this.isClosed &&
      !this.error &&
      this.decoder.bufferedBytes === 0 &&
      (this.processing || this.inQueue.length > 0)
    ) {
      // Whole frames that arrived before the close still count (a SYN_REPLY whose header block is
      // being inflated, the DATA and GOAWAY behind it): finish them, then tear down.
      this.closeAfterProcessing = true;
      return;
    }
    if (!this.isClosed && !this.error && this.decoder.bufferedBytes > 0) {
      this.error = new SpdyProtocolError(
        `connection closed in the middle of a frame (${this.decoder.bufferedBytes} bytes)`,
      );
    }
    this.teardown();
    if (this.closeTimer) clearTimeout(this.closeTimer);
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.emit('close', this.error);
  }

  /**
   * Session error: best-effort GOAWAY written straight to the socket (the ordered queue may be
   * waiting on zlib or 'drain'; frames are written whole, so this cannot split one), then close.
   */
  private sessionError(err: Error): void {
    if (this.isClosed) return;
    const status = err instanceof SpdyProtocolError ? err.goAwayStatus : GoAwayStatus.INTERNAL_ERROR;
    this.debug({ err: err.message, status }, 'SPDY session error');
    if (!this.error) this.error = err;
    const socket = this.socket;
    if (!socket.destroyed && !socket.writableEnded) {
      if (!this.goAwaySent) {
        this.goAwaySent = true;
        socket.write(encodeGoAway(this.lastPeerStreamId, status));
      }
      socket.end();
    }
    this.teardown();
    this.armCloseTimer(ERROR_LINGER_MS);
  }

  /** Marks the session over and releases everything but the socket itself. Idempotent. */
  private teardown(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.outClosed = true;
    const closedErr = new SpdySessionClosedError('SPDY session closed', { cause: this.error });
    for (const state of [...this.streams.values()]) {
      this.retire(state);
      this.failOpen(state, closedErr);
      state.stream.destroy();
    }
    this.streams.clear();
    for (const [id, p] of this.pings) {
      clearTimeout(p.timer);
      this.pings.delete(id);
      p.reject(closedErr);
    }
    for (const item of this.outQueue.splice(0)) item.done?.(closedErr);
    this.inQueue = [];
    this.inQueuedBytes = 0;
    this.bufferedStreams.clear();
    this.compressor.close();
    this.decompressor.close();
  }

  // Methods rather than field reads so that checks after an await are not narrowed away.
  private outputClosed(): boolean {
    return this.outClosed;
  }

  private sessionOver(): boolean {
    return this.isClosed;
  }

  private debug(fields: Record<string, unknown>, msg: string): void {
    if (!this.onDebug) return;
    try {
      this.onDebug({ ...fields, role: this.isServer ? 'server' : 'client' }, msg);
    } catch {
      // A failing logger must not take the session down.
    }
  }
}
