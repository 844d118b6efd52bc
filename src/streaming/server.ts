/**
 * The streaming HTTP server behind CRI Exec, Attach and PortForward. The RPCs validate the
 * request and get back a URL holding a single-use token (tokens.ts); the client (kubelet,
 * proxying kubectl, or crictl) then upgrades a connection on that URL to SPDY/3.1 or WebSocket
 * and the session runs (stdio.ts, port-forward.ts). Unknown, used or expired tokens get 404;
 * a malformed upgrade or an unsupported protocol gets 400 naming what is supported.
 */
import { createServer as createHttpServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFile } from 'node:fs/promises';
import { Socket, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ContainerManager } from '../container/manager.js';
import { InvalidArgumentError, UnavailableError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { SandboxManager } from '../sandbox/manager.js';
import { spdyPortForward, wsPortForward, type ForwardContext, type PodConnection } from './port-forward.js';
import {
  NEEDS_UPGRADE,
  negotiateSpdy,
  offeredProtocols,
  remotecommandVersion,
  SPDY_PORTFORWARD,
  SPDY_REMOTECOMMAND,
  upgradeKind,
  WS_PORTFORWARD,
  WS_REMOTECOMMAND,
} from './protocols.js';
import { SpdySession } from './spdy/session.js';
import { expectedStreams, spdyStdio } from './spdy-stdio.js';
import { runAttach, runExec, type StdioBackend, type StdioChannels } from './stdio.js';
import {
  RequestCache,
  type AttachRequest,
  type ExecRequest,
  type PortForwardRequest,
  type StreamRequest,
} from './tokens.js';
import { wsStdio } from './ws-stdio.js';

export type StreamKind = 'exec' | 'attach' | 'portforward';

/** Where the streaming metrics go (the daemon wires them to prom-client). */
export interface StreamingObserver {
  sessionStarted(kind: StreamKind): void;
  sessionEnded(kind: StreamKind): void;
  bytes(kind: StreamKind, direction: 'in' | 'out', n: number): void;
}

export interface StreamingSettings {
  address: string;
  port: number;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tokenTtlMs?: number;
  /** How long a client has to open all its streams (kubelet: 30 s). */
  streamCreationTimeoutMs?: number;
  /** A connection with no traffic for this long is closed (kubelet: 4 h). */
  idleTimeoutMs?: number;
}

export interface StreamingDeps {
  containers: Pick<ContainerManager, 'checkStreamable' | 'execStream' | 'attach'>;
  sandboxes: Pick<SandboxManager, 'requireReady' | 'dialPort'>;
  log: Logger;
  observer?: StreamingObserver;
}

const ROUTE = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]{1,64})\/?$/;

export class StreamingServer {
  private server: Server | undefined;
  private readonly tokens: RequestCache;
  /** The WebSocket subprotocol crisp chose for each upgrade, which ws then answers with. */
  private readonly wsChosen = new WeakMap<IncomingMessage, string>();
  private readonly wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    // ws would otherwise answer with the client's first offer, not the one crisp speaks.
    handleProtocols: (_offers, req) => this.wsChosen.get(req) || false,
  });
  private readonly live = new Set<Duplex>();
  private base = '';

  constructor(
    private readonly deps: StreamingDeps,
    private readonly settings: StreamingSettings,
  ) {
    this.tokens = new RequestCache(settings.tokenTtlMs);
  }

  async start(): Promise<void> {
    const { tlsCertFile, tlsKeyFile } = this.settings;
    const server =
      tlsCertFile !== undefined && tlsKeyFile !== undefined
        ? createHttpsServer({ cert: await readFile(tlsCertFile), key: await readFile(tlsKeyFile) })
        : createHttpServer();
    server.on('request', (req, res) => {
      const route = ROUTE.exec(new URL(req.url ?? '/', 'http://x').pathname);
      res.statusCode = route === null ? 404 : 400;
      res.setHeader('Content-Type', 'text/plain; charset=utf-8');
      res.end(route === null ? 'not found\n' : `${NEEDS_UPGRADE}\n`);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.onUpgrade(req, socket, head);
    });
    server.on('clientError', (_err, socket) => {
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.settings.port, this.settings.address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const addr = server.address() as AddressInfo;
    const scheme = tlsCertFile !== undefined ? 'https' : 'http';
    this.base = `${scheme}://${advertised(addr.address, addr.family)}:${addr.port}/`;
    this.deps.log.info({ url: this.base }, 'streaming server listening');
  }

  /** e.g. `http://127.0.0.1:41234/`. */
  get baseUrl(): string {
    return this.base;
  }

  async close(): Promise<void> {
    for (const socket of this.live) socket.destroy();
    this.wss.close();
    const server = this.server;
    if (server === undefined) return;
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
      server.closeAllConnections();
    });
  }

  // --- URLs for the RPCs --------------------------------------------------------------------

  async execUrl(req: Omit<ExecRequest, 'kind'>): Promise<string> {
    if (req.cmd.length === 0) throw new InvalidArgumentError('cmd', 'required, got an empty command');
    checkStdio(req);
    const c = await this.deps.containers.checkStreamable(req.containerId, 'exec');
    return this.url({ kind: 'exec', ...req, containerId: c.config.id });
  }

  async attachUrl(req: Omit<AttachRequest, 'kind'>): Promise<string> {
    checkStdio(req);
    const c = await this.deps.containers.checkStreamable(req.containerId, 'attach');
    return this.url({ kind: 'attach', ...req, containerId: c.config.id });
  }

  /**
   * The ports are not checked here, as containerd and CRI-O do not: one that is no TCP port fails
   * its own stream when the client opens it (dialInNetns), and the others still work.
   */
  async portForwardUrl(req: Omit<PortForwardRequest, 'kind'>): Promise<string> {
    const pod = await this.deps.sandboxes.requireReady(req.podSandboxId, 'port-forward to');
    return this.url({ kind: 'portforward', podSandboxId: pod.config.id, ports: req.ports });
  }

  private url(request: StreamRequest): string {
    if (this.server === undefined) throw new UnavailableError('the streaming server is not running');
    const token = this.tokens.insert(request);
    return new URL(`${request.kind}/${token}`, this.base).toString();
  }

  // --- connections ---------------------------------------------------------------------------

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const log = this.deps.log;
    socket.on('error', () => undefined);
    const route = ROUTE.exec(new URL(req.url ?? '/', 'http://x').pathname);
    if (route === null) {
      refuse(socket, 404, 'not found');
      return;
    }
    const [, kind, token] = route as unknown as [string, StreamKind, string];
    const transport = upgradeKind(req.headers);
    if (typeof transport !== 'string') {
      refuse(socket, 400, transport.error);
      return;
    }
    let protocol: string;
    if (transport === 'spdy') {
      const n = negotiateSpdy(req.headers, kind === 'portforward' ? SPDY_PORTFORWARD : SPDY_REMOTECOMMAND);
      if (!n.ok) {
        // kubelet answers 403 here; crisp answers 400 with the same X-Accepted header.
        refuse(
          socket,
          400,
          n.message,
          n.supported.map((p) => ['X-Accepted-Stream-Protocol-Versions', p]),
        );
        return;
      }
      protocol = n.protocol;
    } else {
      const supported: readonly string[] = kind === 'portforward' ? WS_PORTFORWARD : WS_REMOTECOMMAND;
      const offers = offeredProtocols(req.headers['sec-websocket-protocol']);
      const chosen = offers.find((o) => supported.includes(o));
      if (offers.length > 0 && chosen === undefined) {
        refuse(
          socket,
          400,
          `none of the offered websocket protocols (${offers.join(', ')}) is supported; this server speaks ${supported.join(', ')}`,
        );
        return;
      }
      protocol = chosen ?? '';
      this.wsChosen.set(req, protocol);
    }
    const request = this.tokens.consume(token);
    if (request === undefined || request.kind !== kind) {
      log.warn(
        { path: `/${kind}/…`, remote: req.socket.remoteAddress },
        'streaming token unknown, used or expired',
      );
      refuse(socket, 404, `unknown, used or expired ${kind} token: ask for a new URL`);
      return;
    }
    this.live.add(socket);
    socket.once('close', () => this.live.delete(socket));
    const idle = this.settings.idleTimeoutMs ?? 4 * 3600_000;
    // The upgrade's socket is a net.Socket (or a TLSSocket, which is one).
    if (idle > 0 && socket instanceof Socket) {
      socket.setTimeout(idle, () => {
        log.info({ kind }, 'streaming connection idle too long; closed it');
        socket.destroy();
      });
    }
    if (transport === 'spdy') {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
          `X-Stream-Protocol-Version: ${protocol}\r\n\r\n`,
      );
      const session = new SpdySession(socket, {
        isServer: true,
        head,
        onDebug: (f, m) => {
          log.debug(f, m);
        },
      });
      void this.runSession(kind, request, protocol, { session }).catch((err: unknown) => {
        log.warn({ err, kind }, 'streaming session failed');
        session.destroy();
      });
    } else {
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        void this.runSession(kind, request, protocol, { ws }).catch((err: unknown) => {
          log.warn({ err, kind }, 'streaming session failed');
          ws.terminate();
        });
      });
    }
  }

  private async runSession(
    kind: StreamKind,
    request: StreamRequest,
    protocol: string,
    conn: { session: SpdySession } | { ws: WebSocket },
  ): Promise<void> {
    const { log, observer } = this.deps;
    const count = (direction: 'in' | 'out', n: number): void => {
      observer?.bytes(kind, direction, n);
    };
    const started = performance.now();
    observer?.sessionStarted(kind);
    try {
      if (request.kind === 'portforward') {
        await this.forward(request.podSandboxId, request.ports, protocol, conn, count);
        return;
      }
      const version = remotecommandVersion(protocol);
      let channels: StdioChannels;
      if ('session' in conn) {
        try {
          channels = await spdyStdio(
            conn.session,
            expectedStreams(request, version),
            version,
            this.settings.streamCreationTimeoutMs ?? 30_000,
          );
        } catch (err) {
          log.warn({ err, kind, containerId: request.containerId }, 'streaming session did not start');
          conn.session.destroy();
          return;
        }
      } else {
        channels = wsStdio(conn.ws, protocol, version, request, (err) => {
          log.warn({ err, kind }, 'websocket protocol error; closing the session');
        });
      }
      const backend: StdioBackend = {
        exec: (id, cmd, opts) => this.deps.containers.execStream(id, cmd, opts),
        attach: (id, opts) => this.deps.containers.attach(id, opts),
      };
      const onResizeError = (err: unknown): void => {
        log.debug({ err, containerId: request.containerId }, 'resize failed');
      };
      const outcome =
        request.kind === 'exec'
          ? await runExec(channels, backend, request, count, onResizeError)
          : await runAttach(channels, backend, request, count, onResizeError);
      log.info(
        {
          kind,
          containerId: request.containerId,
          protocol,
          outcome: outcome.kind === 'exit' ? `exit ${outcome.code}` : outcome.kind,
          ...(outcome.kind === 'error' ? { error: outcome.message } : {}),
          durationMs: Math.round(performance.now() - started),
        },
        'streaming session ended',
      );
    } finally {
      observer?.sessionEnded(kind);
    }
  }

  private async forward(
    podSandboxId: string,
    ports: number[],
    protocol: string,
    conn: { session: SpdySession } | { ws: WebSocket },
    count: (direction: 'in' | 'out', n: number) => void,
  ): Promise<void> {
    const ctx: ForwardContext = {
      podSandboxId,
      count,
      pairTimeoutMs: this.settings.streamCreationTimeoutMs ?? 30_000,
      onDebug: (f, m) => {
        this.deps.log.debug({ ...f, sandboxId: podSandboxId }, m);
      },
      dial: async (port): Promise<PodConnection> => {
        const c = await this.deps.sandboxes.dialPort(podSandboxId, port);
        const p = c.process;
        return {
          input: p.stdin,
          output: p.stdout,
          ended: p.exited.then(() => undefined),
          close: () => {
            p.kill();
          },
        };
      },
    };
    if ('session' in conn) {
      spdyPortForward(conn.session, ctx);
      await conn.session.whenClosed();
    } else {
      if (ports.length === 0) {
        conn.ws.close(1008, 'no ports: the PortForward request named none');
        return;
      }
      wsPortForward(conn.ws, protocol, ports, ctx);
      await new Promise<void>((resolve) => {
        conn.ws.once('close', () => {
          resolve();
        });
      });
    }
  }
}

function checkStdio(req: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }): void {
  if (req.tty && req.stderr) {
    throw new InvalidArgumentError(
      'stderr',
      'must be false when tty is set (a terminal has one output stream)',
    );
  }
  if (!req.stdin && !req.stdout && !req.stderr) {
    throw new InvalidArgumentError('stdin', 'at least one of stdin, stdout and stderr must be set');
  }
}

/** The host clients should dial: a wildcard listen address is advertised as loopback. */
function advertised(address: string, family: string): string {
  if (address === '0.0.0.0') return '127.0.0.1';
  if (address === '::') return '[::1]';
  return family === 'IPv6' ? `[${address}]` : address;
}

function refuse(socket: Duplex, status: number, message: string, headers: [string, string][] = []): void {
  const body = `${message}\n`;
  const extra = headers.map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n${extra}\r\n${body}`,
  );
}
