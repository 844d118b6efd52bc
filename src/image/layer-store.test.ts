import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { CanceledError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { runCommand } from '../util/command.js';
import { LayerStore } from './layer-store.js';
import { sha256, tarBytes, withTempDir, type TarEntry } from './tar-fixtures.js';

const TAR = 'application/vnd.oci.image.layer.v1.tar';
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
const DOCKER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

/** A logger that keeps its records, to see what the store reported. */
function memoryLogger(): { log: Logger; records: { msg?: string; [k: string]: unknown }[] } {
  const records: { msg?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') records.push(JSON.parse(line) as { msg?: string });
      }
      callback();
    },
  });
  return { log: pino({ level: 'debug' }, sink), records };
}

interface Layer {
  tar: Buffer;
  diffId: string;
}

async function layer(entries: TarEntry[]): Promise<Layer> {
  const tar = await tarBytes(entries);
  return { tar, diffId: sha256(tar) };
}

const SIMPLE: TarEntry[] = [
  { header: { name: 'etc/', type: 'directory' } },
  { header: { name: 'etc/os-release', mode: 0o644 }, body: 'ID=crisp\n' },
  { header: { name: 'bin/sh', mode: 0o755 }, body: '#!/bin/true\n'.repeat(1000) },
];

async function zstd(dir: string, bytes: Buffer): Promise<Buffer> {
  const input = path.join(dir, `in-${Math.random().toString(36).slice(2)}.tar`);
  await fs.writeFile(input, bytes);
  await runCommand('zstd', ['-q', '-f', '-o', `${input}.zst`, input]);
  return fs.readFile(`${input}.zst`);
}

/** A store in `<dir>/layers` and a place for blobs in `<dir>/blobs`. */
async function setup(
  dir: string,
): Promise<{ store: LayerStore; records: { msg?: string }[]; blob: (b: Buffer) => Promise<string> }> {
  const { log, records } = memoryLogger();
  const store = new LayerStore(path.join(dir, 'layers'), { log });
  await store.init();
  await fs.mkdir(path.join(dir, 'blobs'));
  let n = 0;
  const blob = async (bytes: Buffer): Promise<string> => {
    const file = path.join(dir, 'blobs', `blob-${n++}`);
    await fs.writeFile(file, bytes);
    return file;
  };
  return { store, records, blob };
}

async function storeEntries(store: LayerStore): Promise<string[]> {
  return (await fs.readdir(store.root)).sort();
}

describe('LayerStore', () => {
  it('unpacks a plain tar layer and commits it under its diffID', async () => {
    await withTempDir(async (dir) => {
      const { store, blob } = await setup(dir);
      const l = await layer(SIMPLE);
      assert.equal(await store.has(l.diffId), false);
      const result = await store.unpack(l.diffId, await blob(l.tar), TAR);
      assert.deepEqual(result, { size: l.tar.length });
      const hex = l.diffId.slice(7);
      assert.equal(store.dir(l.diffId), path.join(dir, 'layers', hex, 'diff'));
      assert.ok(await store.has(l.diffId));
      assert.deepEqual(await store.list(), [l.diffId]);
      assert.deepEqual(await storeEntries(store), [hex]);
      assert.deepEqual((await fs.readdir(path.join(dir, 'layers', hex))).sort(), ['complete.json', 'diff']);
      assert.equal(await fs.readFile(path.join(store.dir(l.diffId), 'etc/os-release'), 'utf8'), 'ID=crisp\n');
      const info = await store.info(l.diffId);
      assert.ok(info);
      assert.equal(info.size, l.tar.length);
      assert.equal(info.compression, 'none');
      assert.equal(info.files, 3);

      // Unpacking again is a no-op that reports the same size.
      assert.deepEqual(await store.unpack(l.diffId, '/nonexistent', TAR), { size: l.tar.length });

      const usage = await store.usage();
      assert.ok(usage.inodes >= 7, `inodes ${usage.inodes}`); // layers, <hex>, marker, diff, etc, bin, 2 files
      assert.ok(usage.bytes >= 12_000, `bytes ${usage.bytes}`);

      await store.delete(l.diffId);
      await store.delete(l.diffId);
      assert.equal(await store.has(l.diffId), false);
      assert.deepEqual(await store.list(), []);
      assert.deepEqual(await storeEntries(store), []);
    });
  });

  it('unpacks gzip and zstd layers, and sniffs mislabelled ones', async () => {
    await withTempDir(async (dir) => {
      const { store, blob, records } = await setup(dir);
      const gz = await layer([...SIMPLE, { header: { name: 'gz' }, body: 'gzip' }]);
      const zs = await layer([...SIMPLE, { header: { name: 'zs' }, body: 'zstd' }]);
      const mislabelled = await layer([...SIMPLE, { header: { name: 'mis' }, body: 'gzip, labelled tar' }]);
      const docker = await layer([...SIMPLE, { header: { name: 'docker' }, body: 'docker gzip' }]);
      await store.unpack(gz.diffId, await blob(gzipSync(gz.tar)), GZIP);
      await store.unpack(zs.diffId, await blob(await zstd(dir, zs.tar)), ZSTD);
      await store.unpack(mislabelled.diffId, await blob(gzipSync(mislabelled.tar)), TAR);
      await store.unpack(docker.diffId, await blob(gzipSync(docker.tar)), DOCKER_GZIP);
      assert.equal(await fs.readFile(path.join(store.dir(gz.diffId), 'gz'), 'utf8'), 'gzip');
      assert.equal(await fs.readFile(path.join(store.dir(zs.diffId), 'zs'), 'utf8'), 'zstd');
      assert.equal(await fs.readFile(path.join(store.dir(docker.diffId), 'docker'), 'utf8'), 'docker gzip');
      assert.equal((await store.info(zs.diffId))?.compression, 'zstd');
      assert.equal((await store.info(mislabelled.diffId))?.compression, 'gzip');
      assert.ok(
        records.some(
          (r) => r.msg === 'layer media type does not match the blob content; going by the content',
        ),
      );
      assert.equal((await store.list()).length, 4);
    });
  });

  it('handles a large zstd layer streamed in many chunks', async () => {
    await withTempDir(async (dir) => {
      const { store, blob } = await setup(dir);
      const big = Buffer.alloc(3 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
      const l = await layer([{ header: { name: 'big.bin' }, body: big }]);
      await store.unpack(l.diffId, await blob(await zstd(dir, l.tar)), ZSTD);
      assert.deepEqual(await fs.readFile(path.join(store.dir(l.diffId), 'big.bin')), big);
    });
  });

  it('refuses content that does not hash to the diffID, naming both, and keeps nothing', async () => {
    await withTempDir(async (dir) => {
      const { store, blob } = await setup(dir);
      const l = await layer(SIMPLE);
      const wrong = sha256(Buffer.from('another layer'));
      await assert.rejects(store.unpack(wrong, await blob(gzipSync(l.tar)), GZIP), (err: unknown) => {
        assert.ok(err instanceof FailedPreconditionError);
        assert.ok(err.message.includes(wrong), err.message);
        assert.ok(err.message.includes(l.diffId), err.message);
        return true;
      });
      assert.equal(await store.has(wrong), false);
      assert.deepEqual(await storeEntries(store), []);
    });
  });

  it('refuses truncated gzip and zstd blobs with a clear error and keeps nothing', async () => {
    await withTempDir(async (dir) => {
      const { store, blob } = await setup(dir);
      const l = await layer(SIMPLE);
      const gz = gzipSync(l.tar);
      const zs = await zstd(dir, l.tar);
      for (const [bytes, mediaType, name] of [
        [gz.subarray(0, gz.length - 20), GZIP, 'gzip'],
        [zs.subarray(0, zs.length - 20), ZSTD, 'zstd'],
      ] as const) {
        await assert.rejects(store.unpack(l.diffId, await blob(bytes), mediaType), (err: unknown) => {
          assert.ok(err instanceof FailedPreconditionError, String(err));
          assert.match(err.message, new RegExp(`layer ${l.diffId}: the blob is not valid ${name} data`));
          return true;
        });
        assert.deepEqual(await storeEntries(store), []);
      }
      const corrupt = Buffer.from(gz);
      corrupt.fill(0x55, 40, 80);
      await assert.rejects(store.unpack(l.diffId, await blob(corrupt), GZIP), /not valid gzip data/);
      assert.deepEqual(await storeEntries(store), []);
    });
  });

  it('refuses a hostile layer, naming the entry, and keeps nothing', async () => {
    await withTempDir(async (dir) => {
      const { store, blob } = await setup(dir);
      const l = await layer([
        { header: { name: 'ok' }, body: 'fine' },
        { header: { name: 'evil', type: 'symlink', linkname: '/etc' } },
        { header: { name: 'evil/passwd' }, body: 'root::0:0::/:/bin/sh\n' },
      ]);
      await assert.rejects(store.unpack(l.diffId, await blob(gzipSync(l.tar)), GZIP), (err: unknown) => {
        assert.ok(err instanceof FailedPreconditionError);
        assert.equal(
          err.message,
          `layer ${l.diffId} entry "evil/passwd" goes through the symbolic link "evil"`,
        );
        return true;
      });
      assert.deepEqual(await storeEntries(store), []);
    });
  });

  it('reports a missing blob file as NotFound and bad diffIDs as InvalidArgument', async () => {
    await withTempDir(async (dir) => {
      const { store } = await setup(dir);
      const l = await layer(SIMPLE);
      await assert.rejects(store.unpack(l.diffId, path.join(dir, 'nope'), TAR), NotFoundError);
      await assert.rejects(store.unpack('sha256:../../x', path.join(dir, 'nope'), TAR), InvalidArgumentError);
      await assert.rejects(
        store.unpack(`sha512:${'a'.repeat(128)}`, path.join(dir, 'nope'), TAR),
        InvalidArgumentError,
      );
      assert.throws(() => store.dir('sha256:..'), InvalidArgumentError);
      assert.deepEqual(await storeEntries(store), []);
    });
  });

  it('shares one unpack between concurrent calls for the same diffID', async () => {
    await withTempDir(async (dir) => {
      const { store, blob, records } = await setup(dir);
      const l = await layer(SIMPLE);
      const file = await blob(gzipSync(l.tar));
      const results = await Promise.all([
        store.unpack(l.diffId, file, GZIP),
        store.unpack(l.diffId, file, GZIP),
        store.unpack(l.diffId, file, GZIP),
      ]);
      assert.deepEqual(results, [{ size: l.tar.length }, { size: l.tar.length }, { size: l.tar.length }]);
      assert.equal(records.filter((r) => r.msg === 'layer unpacked').length, 1);
      assert.deepEqual(await storeEntries(store), [l.diffId.slice(7)]);
    });
  });

  it('lets one caller give up without cancelling the unpack for the others', async () => {
    await withTempDir(async (dir) => {
      const { store, blob } = await setup(dir);
      const l = await layer(SIMPLE);
      const file = await blob(gzipSync(l.tar));
      const quitter = new AbortController();
      const first = store.unpack(l.diffId, file, GZIP, quitter.signal);
      const second = store.unpack(l.diffId, file, GZIP);
      quitter.abort();
      await assert.rejects(first, CanceledError);
      assert.deepEqual(await second, { size: l.tar.length });
      assert.ok(await store.has(l.diffId));
    });
  });

  it('cancels the unpack when every caller has gone, leaving nothing', async () => {
    await withTempDir(async (dir) => {
      const { store, blob } = await setup(dir);
      const many: TarEntry[] = [];
      for (let i = 0; i < 300; i++) many.push({ header: { name: `f${i}` }, body: `file ${i}` });
      const l = await layer(many);
      const controller = new AbortController();
      const unpacking = store.unpack(l.diffId, await blob(gzipSync(l.tar)), GZIP, controller.signal);
      controller.abort();
      await assert.rejects(unpacking, CanceledError);
      // The work notices the abort at its next check and removes its temp dir.
      const deadline = Date.now() + 5000;
      while ((await storeEntries(store)).length > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.deepEqual(await storeEntries(store), []);
      assert.equal(await store.has(l.diffId), false);
    });
  });

  it('init() removes what a crash left and keeps committed layers', async () => {
    await withTempDir(async (dir) => {
      const { store, blob } = await setup(dir);
      const l = await layer(SIMPLE);
      await store.unpack(l.diffId, await blob(l.tar), TAR);
      const a = 'a'.repeat(64);
      const b = 'b'.repeat(64);
      const c = 'c'.repeat(64);
      const leftovers = [
        `.tmp-${a}-0123456789ab/diff/usr/bin`, // an unpack in progress
        `.del-${b}-0123456789ab/diff/etc`, // a delete in progress
        `${c}/diff/etc`, // a layer dir without marker (never trusted)
      ];
      for (const p of leftovers) await fs.mkdir(path.join(store.root, p), { recursive: true });
      await fs.mkdir(path.join(store.root, 'd'.repeat(64), 'diff'), { recursive: true });
      await fs.writeFile(path.join(store.root, 'd'.repeat(64), 'complete.json'), '{"diffId": "sha256:'); // torn
      assert.equal(await store.has(`sha256:${c}`), false);
      assert.equal(await store.has(`sha256:${'d'.repeat(64)}`), false);
      assert.deepEqual(await store.list(), [l.diffId]);

      const { log, records } = memoryLogger();
      await new LayerStore(store.root, { log }).init();
      assert.deepEqual(await storeEntries(store), [l.diffId.slice(7)]);
      assert.ok(await store.has(l.diffId));
      assert.equal(records.filter((r) => typeof r.msg === 'string' && /crash|marker/.test(r.msg)).length, 4);
    });
  });

  it('produces lowerdirs overlayfs understands: whiteouts hide files, opaque dirs hide children', async () => {
    await withTempDir(async (dir) => {
      const { store, blob } = await setup(dir);
      const lower = await layer([
        { header: { name: 'a' }, body: 'lower a' },
        { header: { name: 'keep' }, body: 'lower keep' },
        { header: { name: 'dir/', type: 'directory' } },
        { header: { name: 'dir/old' }, body: 'lower old' },
        { header: { name: 'plain/', type: 'directory' } },
        { header: { name: 'plain/lower' }, body: 'lower plain' },
      ]);
      const upper = await layer([
        { header: { name: '.wh.a' }, body: '' },
        { header: { name: 'dir/', type: 'directory' } },
        { header: { name: 'dir/.wh..wh..opq' }, body: '' },
        { header: { name: 'dir/new' }, body: 'upper new' },
        { header: { name: 'plain/upper' }, body: 'upper plain' },
      ]);
      await store.unpack(lower.diffId, await blob(gzipSync(lower.tar)), GZIP);
      await store.unpack(upper.diffId, await blob(await zstd(dir, upper.tar)), ZSTD);

      const ctr = path.join(dir, 'ctr');
      const merged = path.join(ctr, 'merged');
      for (const d of ['upper', 'work', 'merged']) await fs.mkdir(path.join(ctr, d), { recursive: true });
      const options = [
        `lowerdir=${store.dir(upper.diffId)}:${store.dir(lower.diffId)}`,
        `upperdir=${path.join(ctr, 'upper')}`,
        `workdir=${path.join(ctr, 'work')}`,
      ].join(',');
      let mounted = false;
      try {
        await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', options, merged]);
        mounted = true;
        assert.deepEqual((await fs.readdir(merged)).sort(), ['dir', 'keep', 'plain']);
        assert.deepEqual(await fs.readdir(path.join(merged, 'dir')), ['new']);
        assert.deepEqual((await fs.readdir(path.join(merged, 'plain'))).sort(), ['lower', 'upper']);
        assert.equal(await fs.readFile(path.join(merged, 'keep'), 'utf8'), 'lower keep');
        await assert.rejects(fs.access(path.join(merged, 'a')), { code: 'ENOENT' });
      } finally {
        if (mounted) await runCommand('umount', [merged]);
        await fs.rm(ctr, { recursive: true, force: true });
      }
    });
  });
});
