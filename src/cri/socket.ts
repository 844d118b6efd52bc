/**
 * Preparing the unix socket path before the gRPC server binds it: the parent directory is
 * created, a stale socket left by a crashed daemon is removed, but a socket some process is
 * still serving on, or anything that is not a socket, is never touched.
 */
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { FailedPreconditionError } from '../errors.js';

const PROBE_TIMEOUT_MS = 1_000;

/** true when something accepts connections on the socket. */
function isServed(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const done = (served: boolean): void => {
      socket.destroy();
      resolve(served);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => {
      // A live server that does not accept within a second is still a live server.
      done(true);
    });
    socket.once('connect', () => {
      done(true);
    });
    socket.once('error', () => {
      done(false);
    });
  });
}

export async function prepareSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) {
    throw new FailedPreconditionError(
      `listen path ${path} exists and is not a socket: remove it or set another listen path`,
    );
  }
  if (await isServed(path)) {
    throw new FailedPreconditionError(
      `socket ${path} is in use by another process (is crisp already running?): stop it or set another listen path`,
    );
  }
  await unlink(path);
}

export async function removeSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
