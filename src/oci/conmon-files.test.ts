import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InternalError, InvalidArgumentError, UnavailableError } from '../errors.js';
import { runCommand } from '../util/command.js';
import { hasOomFile, readExitFile, reopenLog, resizeTerminal } from './conmon-files.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'crisp-conmon-files-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('exit and oom files', () => {
  it('reads the exit code and the mtime', () =>
    withDir(async (dir) => {
      assert.equal(await readExitFile(dir, 'abc'), undefined);
      await writeFile(join(dir, 'abc'), '');
      assert.equal(await readExitFile(dir, 'abc'), undefined, 'an empty file is not written yet');
      await writeFile(join(dir, 'abc'), '137');
      const when = new Date('2026-01-02T03:04:05.678Z');
      await utimes(join(dir, 'abc'), when, when);
      const exit = await readExitFile(dir, 'abc');
      assert.ok(exit);
      assert.equal(exit.exitCode, 137);
      // utimes goes through a double, so allow a millisecond either way.
      assert.ok(Math.abs(exit.finishedAt.getTime() - when.getTime()) <= 1);
      assert.ok(Math.abs(Number(exit.finishedAtNs / 1_000_000n) - when.getTime()) <= 1);
      await writeFile(join(dir, 'bad'), 'x');
      await assert.rejects(readExitFile(dir, 'bad'), InternalError);
    }));

  it('sees the oom marker', () =>
    withDir(async (dir) => {
      assert.equal(await hasOomFile(dir), false);
      await writeFile(join(dir, 'oom'), '');
      assert.equal(await hasOomFile(dir), true);
    }));
});

describe('ctl FIFO', () => {
  it('fails at once, clearly, when there is no FIFO or nobody reads it', () =>
    withDir(async (dir) => {
      await assert.rejects(reopenLog(dir), (err) => {
        assert.ok(err instanceof UnavailableError);
        assert.match(err.message, /no such file/);
        return true;
      });
      await mkdir(join(dir, 'b'));
      await runCommand('mkfifo', [join(dir, 'b', 'ctl')]);
      const started = performance.now();
      await assert.rejects(resizeTerminal(join(dir, 'b'), 24, 80), (err) => {
        assert.ok(err instanceof UnavailableError);
        assert.match(err.message, /no reader/);
        return true;
      });
      assert.ok(performance.now() - started < 1_000);
    }));

  it('rejects dimensions that are not small integers', async () => {
    await assert.rejects(resizeTerminal('/nonexistent', -1, 80), InvalidArgumentError);
    await assert.rejects(resizeTerminal('/nonexistent', 24, 1.5), InvalidArgumentError);
  });
});
