/**
 * The e2e tests' streaming client: it speaks to the URLs crisp hands out exactly as client-go
 * (crictl, and the API server behind kubelet) does: an HTTP upgrade to SPDY/3.1 with
 * X-Stream-Protocol-Version offers, then one stream per channel in client-go's order (error,
 * stdin, stdout, stderr, resize), or a WebSocket with channel-prefixed messages.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { SpdySession, type SpdyStream } from '../../../src/streaming/spdy/session.js';

export interface UpgradeRefusal {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Upgrades to SPDY/3.1; resolves with the session or with the HTTP refusal. */
export function spdyUpgrade(
  url: string,
  protocols: string[],
  opts: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ session: SpdySession; protocol: string; socket: Socket } | UpgradeRefusal> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = {
      Connection: 'Upgrade',
      Upgrade: 'SPDY/3.1',
      ...(protocols.length > 0 ? { 'X-Stream-Protocol-Version': protocols } : {}),
      ...opts.headers,
    };
    const req = httpRequest(url, {
      method: opts.method ?? 'POST',
      headers,
      timeout: opts.timeoutMs ?? 10_000,
    });
    req.on('upgrade', (res, socket, head) => {
      const protocol = String(res.headers['x-stream-protocol-version'] ?? '');
      resolve({ session: new SpdySession(socket, { isServer: false, head }), protocol, socket });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`upgrade of ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export function isRefusal(x: unknown): x is UpgradeRefusal {
  return typeof x === 'object' && x !== null && 'status' in x;
}

export interface ExecResult {
  stdout: Buffer;
  stderr: Buffer;
  /** The raw bytes of the error stream. */
  errorStream: string;
  /** From the v4 Status: 0 on Success, the ExitCode cause otherwise; undefined if unparsable. */
  exitCode: number | undefined;
  protocol: string;
}

export interface SpdyExecOptions {
  stdin?: Buffer;
  /** Keep stdin open (do not FIN) until `stdinDone` resolves. */
  stdinDone?: Promise<void>;
  tty?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  /** Sizes written to the resize stream (tty); the first one right after the streams open. */
  sizes?: { Width: number; Height: number }[];
  protocols?: string[];
  /** Called with the session and its streams once they are open. */
  onOpen?: (s: {
    session: SpdySession;
    /** The connection: destroying it is a client going away at once. */
    socket: Socket;
    stdin?: SpdyStream;
    resize?: SpdyStream;
    stdout?: SpdyStream;
  }) => void;
  timeoutMs?: number;
}

/** Reads a stream to its end. */
export function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      resolve(Buffer.concat(chunks));
    });
    stream.on('close', () => {
      resolve(Buffer.concat(chunks));
    });
    stream.on('error', () => {
      resolve(Buffer.concat(chunks));
    });
  });
}

export function exitCodeOf(errorStream: string): number | undefined {
  if (errorStream === '') return undefined;
  try {
    const status = JSON.parse(errorStream) as {
      status?: string;
      details?: { causes?: { reason?: string; message?: string }[] };
    };
    if (status.status === 'Success') return 0;
    const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
    return cause?.message === undefined ? undefined : Number(cause.message);
  } catch {
    return undefined;
  }
}

/** Opens a stream whose errors (the server ending the session early) only end its reads. */
export async function openStream(session: SpdySession, headers: Record<string, string>): Promise<SpdyStream> {
  const s = await session.openStream(headers);
  s.on('error', () => undefined);
  return s;
}

/** An exec or attach session over SPDY as client-go runs it; resolves when the server is done. */
export async function spdyExec(url: string, opts: SpdyExecOptions = {}): Promise<ExecResult> {
  const up = await spdyUpgrade(
    url,
    opts.protocols ?? ['v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'],
  );
  if (isRefusal(up)) throw new Error(`upgrade refused: ${up.status} ${up.body}`);
  const { session, protocol, socket } = up;
  const tty = opts.tty ?? false;
  const wantStdout = opts.stdout ?? true;
  const wantStderr = (opts.stderr ?? !tty) && !tty;
  const error = await openStream(session, { streamType: 'error' });
  error.end();
  const errorText = readAll(error);
  const stdin =
    opts.stdin !== undefined || opts.stdinDone !== undefined
      ? await openStream(session, { streamType: 'stdin' })
      : undefined;
  const stdout = wantStdout ? await openStream(session, { streamType: 'stdout' }) : undefined;
  const stderr = wantStderr ? await openStream(session, { streamType: 'stderr' }) : undefined;
  const resize =
    tty && protocol !== 'v2.channel.k8s.io' && protocol !== 'channel.k8s.io'
      ? await openStream(session, { streamType: 'resize' })
      : undefined;
  stdout?.end();
  stderr?.end();
  const outs = Promise.all([
    stdout ? readAll(stdout) : Buffer.alloc(0),
    stderr ? readAll(stderr) : Buffer.alloc(0),
  ]);
  if (resize !== undefined) {
    for (const size of opts.sizes ?? []) resize.write(`${JSON.stringify(size)}\n`);
  }
  opts.onOpen?.({ session, socket, stdin, resize, stdout });
  if (stdin !== undefined) {
    if (opts.stdin !== undefined) stdin.write(opts.stdin);
    if (opts.stdinDone !== undefined) void opts.stdinDone.then(() => stdin.end());
    else stdin.end();
  }
  const timeout = new Promise<never>((_, reject) => {
    setTimeout(() => {
      session.destroy();
      reject(new Error(`exec session did not end within ${opts.timeoutMs ?? 60_000} ms`));
    }, opts.timeoutMs ?? 60_000).unref();
  });
  const [[out, err], errText] = await Promise.race([Promise.all([outs, errorText]), timeout]);
  const text = errText.toString('utf8');
  session.destroy();
  return { stdout: out, stderr: err, errorStream: text, exitCode: exitCodeOf(text), protocol };
}

// --- port-forward over SPDY ---------------------------------------------------------------------

export interface ForwardResult {
  data: Buffer;
  error: string;
}

/** One forwarded TCP connection on an open portforward.k8s.io session: send `payload`, read the reply. */
export async function spdyForwardOnce(
  session: SpdySession,
  port: number,
  requestId: number,
  payload: Buffer,
): Promise<ForwardResult> {
  const headers = { port: String(port), requestID: String(requestId) };
  const error = await openStream(session, { ...headers, streamType: 'error' });
  error.end();
  const errorText = readAll(error);
  const data = await openStream(session, { ...headers, streamType: 'data' });
  const reply = readAll(data);
  data.write(payload);
  const [d, e] = await Promise.all([reply, errorText]);
  return { data: d, error: e.toString('utf8') };
}

// --- WebSocket ------------------------------------------------------------------------------------

export interface WsSession {
  ws: WebSocket;
  protocol: string;
  /** Payloads received per channel, in order (the first message on each channel included). */
  channels: Map<number, Buffer[]>;
  closed: Promise<{ code: number; reason: string }>;
  send(channel: number, data: Buffer | string): void;
}

export function wsConnect(url: string, protocols: string[]): Promise<WsSession> {
  const wsUrl = url.replace(/^http/, 'ws');
  const ws = new WebSocket(wsUrl, protocols);
  const base64 = (p: string): boolean => p.includes('base64');
  const channels = new Map<number, Buffer[]>();
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
    });
  });
  ws.on('message', (raw, isBinary) => {
    const buf = Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);
    let channel: number;
    let data: Buffer;
    if (base64(ws.protocol) && !isBinary) {
      const text = buf.toString('latin1');
      channel = text.charCodeAt(0) - 0x30;
      data = Buffer.from(text.slice(1), 'base64');
    } else {
      channel = buf[0] ?? -1;
      data = buf.subarray(1);
    }
    const list = channels.get(channel) ?? [];
    list.push(data);
    channels.set(channel, list);
  });
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`websocket upgrade refused: ${res.statusCode}`));
    });
    ws.once('error', reject);
    ws.once('open', () => {
      resolve({
        ws,
        protocol: ws.protocol,
        channels,
        closed,
        send(channel, data) {
          const payload = Buffer.isBuffer(data) ? data : Buffer.from(data);
          if (base64(ws.protocol)) ws.send(String.fromCharCode(0x30 + channel) + payload.toString('base64'));
          else ws.send(Buffer.concat([Buffer.from([channel]), payload]));
        },
      });
    });
  });
}

export function channelBytes(s: WsSession, channel: number): Buffer {
  return Buffer.concat(s.channels.get(channel) ?? []);
}
