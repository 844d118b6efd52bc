/** The image service's part of orphan collection: what it removes, and that it keeps off running pulls. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { FakeStateStore } from '../store/fake-state-store.js';
import type { OrphanKind, OrphanPass } from '../util/orphans.js';
import { ContentStore } from './content-store.js';
import { LayerStore } from './layer-store.js';
import { computeDigest } from './manifest.js';
import type { RegistriesPolicy } from './registries.js';
import { RegistryClient } from './registry-client.js';
import { ImageService } from './service.js';

const log = pino({ level: 'silent' });

function recording(): OrphanPass & { found: [OrphanKind, string][] } {
  const found: [OrphanKind, string][] = [];
  return {
    found,
    isOld: (m) => Date.now() - m > 60_000,
    removed: (kind, what) => found.push([kind, what]),
    failed: (kind, what, err) => assert.fail(`${kind} ${what}: ${String(err)}`),
  };
}

describe('ImageService.collectOrphans', () => {
  let dir: string;
  let content: ContentStore;
  let service: ImageService;
  let releaseRegistries: (err: Error) => void = () => undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crisp-image-gc-'));
    content = new ContentStore(join(dir, 'blobs'));
    service = new ImageService(
      {
        store: new FakeStateStore(),
        content,
        layers: new LayerStore(join(dir, 'layers'), { log }),
        client: new RegistryClient({ log, userAgent: 'test' }),
        // A pull stays "running" until the test lets registries.conf "load" (and fail).
        registries: () =>
          new Promise<RegistriesPolicy>((_resolve, reject) => {
            releaseRegistries = reject;
          }),
        log,
      },
      { authFile: '', pullTimeoutMs: 10_000 },
    );
    await service.init();
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('does nothing while a pull runs, then removes unreferenced blobs and old temp entries', async () => {
    const bytes = Buffer.from('a stray blob');
    const digest = computeDigest(bytes);
    await content.putBytes(digest, bytes);
    const old = new Date(Date.now() - 3_600_000);
    const ingest = join(dir, 'blobs', 'sha256', '.ingest-0123-abcd');
    await writeFile(ingest, 'half');
    await utimes(ingest, old, old);
    const young = join(dir, 'blobs', 'sha256', '.ingest-4567-abcd');
    await writeFile(young, 'half');
    const scratch = join(dir, 'tmp');
    await mkdir(join(scratch, 'import-1'), { recursive: true });
    await utimes(join(scratch, 'import-1'), old, old);

    const pull = service.pull('example.test/app:1', undefined, new AbortController().signal);
    const during = recording();
    await service.collectOrphans(during, scratch);
    assert.deepEqual(during.found, [], 'nothing is collected while a pull runs');
    assert.deepEqual(await content.list(), [digest]);

    releaseRegistries(new Error('no registries.conf'));
    await assert.rejects(pull);
    const afterPull = recording();
    await service.collectOrphans(afterPull, scratch);
    assert.deepEqual(afterPull.found, [
      ['blob', digest],
      ['tmp', ingest],
      ['tmp', join(scratch, 'import-1')],
    ]);
    assert.deepEqual(await content.list(), []);
    assert.deepEqual(
      await readdir(join(dir, 'blobs', 'sha256')),
      ['.ingest-4567-abcd'],
      'the young temp stays',
    );
    assert.deepEqual(await readdir(scratch), []);
  });
});
