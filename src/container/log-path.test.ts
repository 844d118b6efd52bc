import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import { checkLogPathContained } from './log-path.js';

describe('checkLogPathContained', () => {
  let base: string;
  let logs: string;
  let outside: string;

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'crisp-log-path-'));
    logs = join(base, 'pod-logs');
    outside = join(base, 'outside');
    await mkdir(join(logs, 'real'), { recursive: true });
    await mkdir(outside);
    await symlink(outside, join(logs, 'escape'));
    await symlink('../../outside', join(logs, 'real', 'relative-escape'));
    await symlink('real', join(logs, 'inner'));
    await symlink(join(outside, 'victim'), join(logs, 'real', 'leaf.log'));
    await symlink(join(logs, 'nowhere'), join(logs, 'dangling'));
    await writeFile(join(logs, 'real', 'file'), '');
  });

  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  const refused = async (rel: string, message: RegExp): Promise<void> => {
    await assert.rejects(checkLogPathContained(logs, join(logs, rel)), (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError, String(err));
      assert.equal(err.field, 'config.log_path');
      assert.match(err.message, message);
      return true;
    });
  };

  it('accepts paths that do not exist yet, real directories and links that stay inside', async () => {
    await checkLogPathContained(logs, join(logs, 'c', '0.log'));
    await checkLogPathContained(logs, join(logs, 'real', '0.log'));
    await checkLogPathContained(logs, join(logs, 'inner', '0.log'));
    await checkLogPathContained(logs, join(logs, 'real', 'file'));
    await checkLogPathContained(join(base, 'no-such-dir'), join(base, 'no-such-dir', 'c', '0.log'));
    await checkLogPathContained(logs, '');
  });

  it('refuses a directory symlink that leads out of the log directory', async () => {
    await refused('escape/0.log', /is a symlink to .*outside, outside the pod's log_directory/);
    await refused('real/relative-escape/0.log', /outside the pod's log_directory/);
    assert.deepEqual(await readdir(outside), [], 'nothing was created outside');
  });

  it('refuses a log file that is a symlink out, or a dangling one', async () => {
    await refused('real/leaf.log', /symlink that leads nowhere|outside the pod's log_directory/);
    await refused('dangling', /leads nowhere/);
  });

  it('refuses components of the wrong kind', async () => {
    await refused('real/file/0.log', /is not a directory/);
    await refused('real', /is not a regular file/);
  });

  it('refuses paths that are not below the log directory', async () => {
    await assert.rejects(checkLogPathContained(logs, join(base, 'x.log')), InvalidArgumentError);
  });
});
