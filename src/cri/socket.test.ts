import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FailedPreconditionError } from '../errors.js';
import { prepareSocketPath } from './socket.js';

describe('prepareSocketPath', () => {
  it('creates missing parent directories', async () => {
    const base = await mkdtemp(join(tmpdir(), 'crisp-sock-'));
    try {
      await prepareSocketPath(join(base, 'a', 'b', 'crisp.sock'));
      assert.ok((await stat(join(base, 'a', 'b'))).isDirectory());
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  it('refuses a path that is not a socket and leaves it alone', async () => {
    const base = await mkdtemp(join(tmpdir(), 'crisp-sock-'));
    try {
      const path = join(base, 'crisp.sock');
      await writeFile(path, 'data');
      await assert.rejects(prepareSocketPath(path), FailedPreconditionError);
      assert.equal(await readFile(path, 'utf8'), 'data');
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  it('refuses a socket another process serves', async () => {
    const base = await mkdtemp(join(tmpdir(), 'crisp-sock-'));
    const path = join(base, 'crisp.sock');
    const server = createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      await assert.rejects(prepareSocketPath(path), /in use by another process/);
      assert.ok((await stat(path)).isSocket());
    } finally {
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
      await rm(base, { recursive: true, force: true });
    }
  });
});
