import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { writeFileAtomic } from './atomic-file.js';

describe('writeFileAtomic', () => {
  it('replaces a file whole, with the mode asked for, leaving no temp file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'crisp-atomic-'));
    try {
      const file = join(dir, 'config.json');
      await writeFile(file, 'old');
      await writeFileAtomic(file, '{"new":true}', 0o600);
      assert.equal(await readFile(file, 'utf8'), '{"new":true}');
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.deepEqual(await readdir(dir), ['config.json']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('removes its temp file when the rename fails, leaving what was there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'crisp-atomic-'));
    try {
      // A non-empty directory where the file should go: rename(2) refuses to replace it.
      const target = join(dir, 'taken');
      await mkdir(target);
      await writeFile(join(target, 'inside'), 'kept');
      await assert.rejects(writeFileAtomic(target, 'new'));
      assert.deepEqual(await readdir(dir), ['taken']);
      assert.equal(await readFile(join(target, 'inside'), 'utf8'), 'kept');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
