/**
 * A process-wide lock that the kernel releases when the process dies, however it dies: a
 * listening socket in Linux's abstract namespace (a name starting with NUL, no file on disk).
 * Binding a name another process holds fails with EADDRINUSE, and there is never a stale lock
 * file to clean up after a crash or SIGKILL.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:net';

export class LockHeldError extends Error {
  constructor(readonly what: string) {
    super(`${what} is locked by another running process`);
    this.name = 'LockHeldError';
  }
}

export interface InstanceLock {
  release(): Promise<void>;
}

/** `what` describes the resource for messages; `key` identifies it (e.g. an absolute path). */
export async function acquireInstanceLock(what: string, key: string): Promise<InstanceLock> {
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 32);
  const server: Server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new LockHeldError(what) : err);
    });
    server.listen({ path: `\0crisp-lock-${digest}` }, () => {
      resolve();
    });
  });
  server.unref();
  return {
    release: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
}
