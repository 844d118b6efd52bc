import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseGroupFile, resolveGroup } from './group.js';

describe('resolveGroup', () => {
  it('finds a group by name and takes a number as a gid', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'crisp-group-'));
    try {
      const file = join(dir, 'group');
      await writeFile(file, 'root:x:0:\n# a comment\nbroken line\ncrisp:x:1234:alice,bob\ncrisp:x:99:\n');
      assert.equal(await resolveGroup('crisp', file), 1234, 'the first entry of a name wins');
      assert.equal(await resolveGroup('root', file), 0);
      assert.equal(await resolveGroup('4321', file), 4321, 'a number needs no name');
      assert.equal(await resolveGroup('nosuch', file), undefined);
      assert.equal(await resolveGroup('99999999999', file), undefined, 'out of range');
      assert.equal(await resolveGroup('crisp', join(dir, 'missing')), undefined);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('skips malformed lines', () => {
    assert.deepEqual([...parseGroupFile(':x:1:\nno-gid:x::\nok:x:7:\n')], [['ok', 7]]);
  });
});
