import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { CanceledError, CommandError } from '../errors.js';
import { Runc, runcErrorMessage } from './runc.js';

const log = pino({ level: 'silent' });

describe('runcErrorMessage', () => {
  it('extracts logrus msg values', () => {
    const stderr =
      'time="2026-11-24T13:47:20Z" level=error msg="runc create failed: exec: \\"/bin/nope\\": stat /bin/nope: no such file or directory"\n';
    assert.equal(
      runcErrorMessage(stderr),
      'runc create failed: exec: "/bin/nope": stat /bin/nope: no such file or directory',
    );
  });

  it('keeps plain text as it is', () => {
    assert.equal(runcErrorMessage('  something else\n'), 'something else');
  });
});

describe('Runc', () => {
  it('reports unknown ids as undefined and tolerates deleting them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'crisp-runc-'));
    try {
      const runc = new Runc({ path: '/usr/sbin/runc', root: join(dir, 'root'), systemdCgroup: false, log });
      assert.equal(await runc.state('missing'), undefined);
      await runc.delete('missing');
      await runc.delete('missing', true);
      await assert.rejects(runc.start('missing'), (err) => {
        assert.ok(err instanceof CommandError);
        assert.match(err.message, /^runc start missing exited with code 1: container does not exist$/);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('bounds every call by a timeout and an AbortSignal', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'crisp-runc-'));
    try {
      const fake = join(dir, 'slow-runc');
      await writeFile(fake, '#!/bin/sh\nexec sleep 30\n');
      await chmod(fake, 0o755);
      const runc = new Runc({ path: fake, root: dir, systemdCgroup: false, log });
      await assert.rejects(runc.state('x', { timeoutMs: 200 }), (err) => {
        assert.ok(err instanceof CommandError);
        assert.match(err.message, /runc state x did not finish: timed out after 200 ms/);
        return true;
      });
      const ac = new AbortController();
      setTimeout(() => {
        ac.abort();
      }, 100);
      await assert.rejects(runc.kill('x', 'KILL', false, { signal: ac.signal }), CanceledError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
