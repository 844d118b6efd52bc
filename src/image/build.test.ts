import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { cachedRegistriesPolicy } from './build.js';
import { parseReference } from './reference.js';

it('cachedRegistriesPolicy reuses a parsed file until it changes, and follows it when it does', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'crisp-registries-'));
  try {
    const file = join(dir, 'registries.conf');
    const load = cachedRegistriesPolicy(file);
    const short = parseReference('busybox');
    assert.deepEqual(
      (await load()).candidates(short).map((r) => r.full),
      ['docker.io/library/busybox:latest'],
      'a missing file means the defaults',
    );
    await writeFile(file, 'unqualified-search-registries = ["quay.io"]\n');
    const first = await load();
    assert.equal(await load(), first, 'unchanged file: the same parsed policy');
    assert.deepEqual(
      first.candidates(short).map((r) => r.full),
      ['quay.io/busybox:latest'],
    );
    await writeFile(file, 'unqualified-search-registries = ["registry.example.test", "quay.io"]\n');
    assert.deepEqual(
      (await load()).candidates(short).map((r) => r.full),
      ['registry.example.test/busybox:latest', 'quay.io/busybox:latest'],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
