import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { pack } from 'tar-stream';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { StoreBatch } from '../store/batch.js';
import { FakeStateStore } from '../store/fake-state-store.js';
import { T0, containerConfig, testId } from '../store/fixtures.js';
import { ContentStore } from './content-store.js';
import { LayerStore } from './layer-store.js';
import { singleLayerImage, storeLocalImage } from './local-image.js';
import { defaultRegistriesPolicy } from './registries.js';
import { RegistryClient } from './registry-client.js';
import { ImageService } from './service.js';

const log = pino({ level: 'silent' });

async function layerTar(content: string): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p) chunks.push(c as Buffer);
  })();
  p.entry({ name: 'hello.txt', mode: 0o644, mtime: new Date(0) }, content);
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

describe('ImageService (local images, fake state store)', () => {
  let dir: string;
  let store: FakeStateStore;
  let service: ImageService;
  let layers: LayerStore;
  let content: ContentStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crisp-image-service-'));
    store = new FakeStateStore();
    content = new ContentStore(join(dir, 'blobs'));
    layers = new LayerStore(join(dir, 'layers'), { log });
    service = new ImageService(
      {
        store,
        content,
        layers,
        client: new RegistryClient({ log, userAgent: 'test' }),
        registries: () => Promise.resolve(defaultRegistriesPolicy()),
        log,
      },
      { authFile: '', pullTimeoutMs: 10_000 },
    );
    await service.init();
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function addImage(text: string, tags: string[]): Promise<string> {
    const built = singleLayerImage(await layerTar(text), { Entrypoint: ['/hello'] }, 'amd64');
    const pulled = await storeLocalImage(content, service.layerSource, {
      manifestBytes: built.manifestBytes,
      configBytes: built.configBytes,
      layers: [built.layer],
    });
    await service.commit({ pulled, tags, repoDigests: [], pinned: false });
    return pulled.id;
  }

  it('finds an image by tag, short name, id and id prefix', async () => {
    const id = await addImage('one\n', ['docker.io/library/one:1', 'docker.io/library/one:2']);
    assert.equal((await service.resolve('one:1'))?.id, id);
    assert.equal((await service.resolve('docker.io/library/one:2'))?.id, id);
    assert.equal((await service.resolve(id))?.id, id);
    assert.equal((await service.resolve(id.slice(7, 19)))?.id, id);
    assert.equal(await service.resolve('one:3'), undefined);
    await assert.rejects(service.resolve('  '), InvalidArgumentError);
  });

  it('moves a tag to the image that now has it', async () => {
    const first = await addImage('first\n', ['docker.io/library/moving:latest']);
    const second = await addImage('second\n', ['docker.io/library/moving:latest']);
    assert.equal((await service.resolve('moving'))?.id, second);
    assert.deepEqual(store.getImage(first)?.repoTags, []);
  });

  it('untags one of several tags, refuses an image in use, then removes it and its layer', async () => {
    const id = await addImage('in use\n', ['docker.io/library/used:a', 'docker.io/library/used:b']);
    const layerCount = (await layers.list()).length;

    await service.remove('used:a');
    assert.deepEqual(store.getImage(id)?.repoTags, ['docker.io/library/used:b']);

    const ctrId = testId('user');
    await store.commit(
      new StoreBatch()
        .putContainerConfig({ ...containerConfig(ctrId, testId('pod')), imageRef: id })
        .putContainerState(ctrId, { state: 'running', updatedAt: T0 }),
    );
    await assert.rejects(service.remove('used:b'), (err) => {
      assert.ok(err instanceof FailedPreconditionError);
      assert.match(err.message, /used by 1 container/);
      assert.ok(err.message.includes(ctrId));
      return true;
    });
    assert.ok(store.getImage(id), 'still there');

    await store.commit(new StoreBatch().delContainer(ctrId));
    await service.remove('used:b');
    assert.equal(store.getImage(id), undefined);
    assert.equal((await layers.list()).length, layerCount - 1, 'its layer is collected');
    await service.remove('used:b'); // idempotent
  });

  it('collects layers and blobs that no record refers to', async () => {
    const id = await addImage('orphan\n', ['docker.io/library/orphan:1']);
    // Drop the record behind the service's back, as a crash between steps would.
    await store.commit(new StoreBatch().delImage(id));
    await service.collect();
    const live = new Set(store.listImages().flatMap((i) => i.layers.map((l) => l.diffId)));
    for (const diffId of await layers.list()) assert.ok(live.has(diffId), `${diffId} is referenced`);
    const blobs = await readdir(join(dir, 'blobs', 'sha256'));
    const liveBlobs = new Set(store.listImages().flatMap((i) => i.blobs.map((b) => b.slice(7))));
    for (const b of blobs) assert.ok(liveBlobs.has(b), `blob ${b} is referenced`);
  });
});
