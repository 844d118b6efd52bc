/**
 * Port forwarding (notes/cri-streaming.md §6). Over SPDY the client opens, per forwarded TCP
 * connection, an `error` and a `data` stream carrying `port` and `requestID` headers; once both
 * are there crisp connects to localhost:port inside the pod and copies bytes both ways. A
 * failure is written as text on that pair's error stream and ends only that pair. Over WebSocket
 * the ports come from the CRI request: channel 2i carries port i's data, 2i+1 its errors, and the
 * first message on each is the port as 2 bytes little-endian.
 */
import type { Readable, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import type { SpdySession, SpdyStream } from './spdy/session.js';
import { ChannelCodec } from './ws-channels.js';

/** A connection inside the pod: write to `input`, read from `output`. */
export interface PodConnection {
  input: Writable;
  output: Readable;
  /** Resolves when the connection's process has ended. */
  ended: Promise<void>;
  close(): void;
}

export type Dialer = (port: number) => Promise<PodConnection>;

export interface ForwardContext {
  dial: Dialer;
  /** For messages: the pod's id. */
  podSandboxId: string;
  count: (direction: 'in' | 'out', bytes: number) => void;
  /** How long a pair may wait for its second stream. */
  pairTimeoutMs: number;
  onDebug: (fields: Record<string, unknown>, msg: string) => void;
}

interface Pair {
  port: number;
  data?: SpdyStream;
  error?: SpdyStream;
  timer: NodeJS.Timeout;
}

function parsePort(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^\d{1,5}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= 1 && n <= 65535 ? n : undefined;
}

function errorText(port: number, ctx: ForwardContext, err: unknown): string {
  const why = err instanceof Error ? err.message : String(err);
  return `error forwarding port ${port} to pod ${ctx.podSandboxId}: ${why}`;
}

function splice(
  conn: PodConnection,
  data: Readable & Writable,
  ctx: ForwardContext,
  onDone: () => void,
): void {
  data.on('data', (chunk: Buffer) => {
    ctx.count('in', chunk.length);
  });
  conn.output.on('data', (chunk: Buffer) => {
    ctx.count('out', chunk.length);
  });
  data.pipe(conn.input);
  conn.output.pipe(data);
  // The client dropping its stream ends the connection; the pod closing it ends the stream and,
  // once the last byte is written, the error stream: client-go waits for that to finish.
  data.once('close', () => {
    conn.close();
  });
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    onDone();
  };
  data.once('finish', finish);
  void conn.ended.then(finish);
}

export function spdyPortForward(session: SpdySession, ctx: ForwardContext): void {
  const pairs = new Map<string, Pair>();
  const start = (id: string, pair: Pair & { data: SpdyStream; error: SpdyStream }): void => {
    clearTimeout(pair.timer);
    pairs.delete(id);
    const { data, error, port } = pair;
    ctx.dial(port).then(
      (conn) => {
        ctx.onDebug({ port, requestId: id }, 'port-forward connection open');
        splice(conn, data, ctx, () => {
          if (!error.writableEnded) error.end();
        });
      },
      (err: unknown) => {
        ctx.onDebug({ port, requestId: id, err }, 'port-forward connection failed');
        error.end(Buffer.from(errorText(port, ctx, err)));
        data.end();
      },
    );
  };
  session.on('stream', (stream: SpdyStream) => {
    const type = (stream.headers.streamtype ?? '').toLowerCase();
    const port = parsePort(stream.headers.port);
    if ((type !== 'data' && type !== 'error') || port === undefined) {
      stream.reset();
      return;
    }
    // Without a requestID header the pair is inferred from the stream ids: error first, data next.
    const id = stream.headers.requestid ?? String(type === 'error' ? stream.id : stream.id - 2);
    let pair = pairs.get(id);
    if (pair !== undefined && (pair[type] !== undefined || pair.port !== port)) {
      stream.reset();
      return;
    }
    stream.accept();
    stream.on('error', () => undefined);
    if (pair === undefined) {
      const timer = setTimeout(() => {
        pairs.delete(id);
        const msg = `timed out waiting for the other stream of port-forward request ${id} (port ${port})`;
        for (const s of [pair?.error, pair?.data]) s?.end(Buffer.from(s === pair?.error ? msg : ''));
      }, ctx.pairTimeoutMs);
      timer.unref();
      pair = { port, timer };
      pairs.set(id, pair);
    }
    pair[type] = stream;
    if (type === 'error') stream.resume();
    if (pair.data !== undefined && pair.error !== undefined) {
      start(id, { ...pair, data: pair.data, error: pair.error });
    }
  });
  session.once('close', () => {
    for (const pair of pairs.values()) clearTimeout(pair.timer);
    pairs.clear();
  });
}

export function wsPortForward(ws: WebSocket, protocol: string, ports: number[], ctx: ForwardContext): void {
  const codec = ChannelCodec.forProtocol(protocol);
  const conns = new Map<number, PodConnection>();
  const pendingInput = new Map<number, Buffer[]>();
  ws.on('error', () => undefined);
  const portHeader = (port: number): Buffer => {
    const b = Buffer.alloc(2);
    // A port that is no TCP port (the request is not checked) fails at dial; its header says 0.
    b.writeUInt16LE(Number.isInteger(port) && port >= 0 && port <= 0xffff ? port : 0);
    return b;
  };
  let open = ports.length;
  const closeOne = (): void => {
    open -= 1;
    if (open === 0 && ws.readyState === ws.OPEN) ws.close(1000);
  };
  ports.forEach((port, i) => {
    codec.send(ws, 2 * i, portHeader(port));
    codec.send(ws, 2 * i + 1, portHeader(port));
    pendingInput.set(i, []);
    ctx.dial(port).then(
      (conn) => {
        if (ws.readyState !== ws.OPEN) {
          conn.close();
          return;
        }
        conns.set(i, conn);
        for (const chunk of pendingInput.get(i) ?? []) conn.input.write(chunk);
        pendingInput.delete(i);
        conn.output.on('data', (chunk: Buffer) => {
          ctx.count('out', chunk.length);
          if (ws.readyState === ws.OPEN) codec.send(ws, 2 * i, chunk);
        });
        // The pod closing its side ends this port's part (the helper may wait for stdin).
        let closed = false;
        const once = (): void => {
          if (closed) return;
          closed = true;
          closeOne();
        };
        conn.output.once('end', once);
        void conn.ended.then(once);
      },
      (err: unknown) => {
        if (ws.readyState === ws.OPEN) codec.send(ws, 2 * i + 1, Buffer.from(errorText(port, ctx, err)));
        closeOne();
      },
    );
  });
  ws.on('message', (raw, isBinary) => {
    try {
      const msg = codec.decode(raw, isBinary);
      if (msg.channel % 2 !== 0) return;
      const i = msg.channel / 2;
      if (i >= ports.length) return;
      const conn = conns.get(i);
      if (msg.close === true) {
        conn?.input.end();
        return;
      }
      ctx.count('in', msg.data.length);
      if (conn !== undefined) conn.input.write(msg.data);
      else pendingInput.get(i)?.push(msg.data);
    } catch {
      ws.close(1002, 'protocol error');
    }
  });
  ws.once('close', () => {
    for (const conn of conns.values()) conn.close();
  });
}
