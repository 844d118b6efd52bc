/**
 * The operator's HTTP endpoint on metrics_address: GET /metrics (Prometheus text format) and
 * GET /debug/state (JSON: what the daemon is, how long it has run, what it is doing now and,
 * as later issues add them, its objects and their states).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';

export type DebugStateProvider = () => Promise<Record<string, unknown>> | Record<string, unknown>;

export interface MetricsServerOptions {
  /** host:port; IPv6 hosts in brackets. */
  address: string;
  registry: Registry;
  debugState: DebugStateProvider;
  log: Logger;
}

export interface MetricsServer {
  /** The address actually bound (port 0 resolves to a real port). */
  address: string;
  close(): Promise<void>;
}

export function splitHostPort(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (!m?.[3]) throw new Error(`address ${JSON.stringify(address)} is not host:port`);
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const { host, port } = splitHostPort(opts.address);
  const server = createServer((req, res) => {
    void handle(opts, req, res);
  });
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const shown =
    bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  return { address: shown, close: () => closeServer(server) };
}

async function handle(opts: MetricsServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain', 'only GET is supported\n');
    } else if (path === '/metrics') {
      send(res, 200, opts.registry.contentType, await opts.registry.metrics());
    } else if (path === '/debug/state') {
      send(res, 200, 'application/json', JSON.stringify(await opts.debugState(), null, 2) + '\n');
    } else {
      send(res, 404, 'text/plain', 'not found: try /metrics or /debug/state\n');
    }
  } catch (err) {
    opts.log.error({ err, path }, 'metrics endpoint failed');
    send(res, 500, 'text/plain', 'internal error\n');
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => {
      resolve();
    });
    server.closeIdleConnections();
  });
}
