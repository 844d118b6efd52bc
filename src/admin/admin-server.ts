/**
 * The operator's admin endpoint: HTTP on a root-only unix socket (<run_dir>/admin.sock, mode
 * 0600), for what the CRI has no RPC for. Today: POST /v1/images/import, which
 * `crisp image import PATH` calls so that a running daemon loads images into its own store.
 */
import { chmod } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { CrispError, toCrispError, type ErrorCode } from '../errors.js';
import type { ImageService } from '../image/service.js';
import type { Logger } from '../log/logger.js';

export interface AdminServer {
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

const httpStatus: Readonly<Record<ErrorCode, number>> = {
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  INVALID_ARGUMENT: 400,
  FAILED_PRECONDITION: 409,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
  CANCELED: 499,
  RESOURCE_EXHAUSTED: 507,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  UNIMPLEMENTED: 501,
  COMMAND_FAILED: 500,
  INTERNAL: 500,
};

async function readBody(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startAdminServer(
  socketPath: string,
  deps: { images: ImageService; scratchDir: string; log: Logger },
): Promise<AdminServer> {
  const server = createServer((req, res) => {
    void (async () => {
      try {
        if (req.method === 'POST' && req.url === '/v1/images/import') {
          const body = (await readBody(req)) as { path?: unknown; name?: unknown };
          if (typeof body.path !== 'string' || body.path === '') {
            reply(res, 400, { code: 'INVALID_ARGUMENT', error: 'invalid path: required' });
            return;
          }
          const name = typeof body.name === 'string' && body.name !== '' ? body.name : undefined;
          const records = await deps.images.importImages(body.path, deps.scratchDir, name);
          deps.log.info({ path: body.path, images: records.map((r) => r.id) }, 'imported images');
          reply(res, 200, { images: records.map((r) => ({ id: r.id, repoTags: r.repoTags })) });
          return;
        }
        reply(res, 404, {
          code: 'NOT_FOUND',
          error: `no admin endpoint ${req.method ?? ''} ${req.url ?? ''}`,
        });
      } catch (err) {
        const e =
          err instanceof SyntaxError ? toCrispError(err, 'request body is not JSON') : toCrispError(err);
        if (!(err instanceof CrispError)) deps.log.error({ err }, 'admin request failed');
        reply(res, httpStatus[e.code], { code: e.code, error: e.message });
      }
    })();
  });
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  await chmod(socketPath, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}
