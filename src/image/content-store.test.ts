import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { InvalidArgumentError, NotFoundError, UnavailableError } from '../errors.js';
import { ContentStore, parseDigest } from './content-store.js';
import { sha256, withTempDir } from './tar-fixtures.js';

const BLOB = Buffer.from('a blob of some bytes, '.repeat(5000));
const DIGEST = sha256(BLOB);

async function openStore(dir: string): Promise<ContentStore> {
  const store = new ContentStore(path.join(dir, 'blobs'));
  await store.init();
  return store;
}

/** A stream of `bytes` in small chunks, so ingest sees many writes. */
function chunked(bytes: Buffer, chunkSize = 4096): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) chunks.push(bytes.subarray(i, i + chunkSize));
  return Readable.from(chunks);
}

/** Everything in the store's sha256 directory, temp files included. */
async function filesIn(store: ContentStore): Promise<string[]> {
  return (await fs.readdir(path.join(store.root, 'sha256'))).sort();
}

describe('ContentStore', () => {
  it('ingests a blob: streamed, verified, stored under its digest, reported in chunks', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      let reported = 0;
      let calls = 0;
      await store.ingest(
        DIGEST,
        BLOB.length,
        () => Promise.resolve(chunked(BLOB)),
        (n) => {
          reported += n;
          calls++;
        },
      );
      assert.equal(reported, BLOB.length);
      assert.ok(calls > 1);
      assert.equal(store.path(DIGEST), path.join(dir, 'blobs', 'sha256', DIGEST.slice('sha256:'.length)));
      assert.ok(await store.has(DIGEST));
      assert.deepEqual(await store.readBytes(DIGEST), BLOB);
      assert.deepEqual(await store.list(), [DIGEST]);
      assert.deepEqual(await filesIn(store), [DIGEST.slice(7)]);
    });
  });

  it('accepts an unknown size and sha512 digests', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      const digest = `sha512:${createHash('sha512').update(BLOB).digest('hex')}`;
      await store.ingest(digest, undefined, () => Promise.resolve(chunked(BLOB)));
      assert.deepEqual(await store.readBytes(digest), BLOB);
      assert.ok(store.path(digest).endsWith(`/sha512/${digest.slice(7)}`));
      assert.deepEqual(await store.list(), [digest]);
    });
  });

  it('refuses content with another digest, naming both, and keeps nothing', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      const other = Buffer.from(BLOB);
      other[100] = 0x21;
      await assert.rejects(
        store.ingest(DIGEST, other.length, () => Promise.resolve(chunked(other))),
        (err: unknown) => {
          assert.ok(err instanceof UnavailableError);
          assert.ok(err.message.includes(DIGEST), err.message);
          assert.ok(err.message.includes(sha256(other)), err.message);
          return true;
        },
      );
      assert.equal(await store.has(DIGEST), false);
      assert.deepEqual(await filesIn(store), []);
    });
  });

  it('refuses a truncated download, with or without a known size', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      const short = BLOB.subarray(0, BLOB.length - 10);
      await assert.rejects(
        store.ingest(DIGEST, BLOB.length, () => Promise.resolve(chunked(short))),
        (err: unknown) => {
          assert.ok(err instanceof UnavailableError);
          assert.match(err.message, new RegExp(`ended after ${short.length} of ${BLOB.length} bytes`));
          return true;
        },
      );
      await assert.rejects(
        store.ingest(DIGEST, undefined, () => Promise.resolve(chunked(short))),
        UnavailableError,
      );
      assert.deepEqual(await filesIn(store), []);
    });
  });

  it('stops a download that runs past the expected size', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      let produced = 0;
      const endless = new Readable({
        read() {
          produced += 65536;
          this.push(Buffer.alloc(65536));
        },
      });
      await assert.rejects(
        store.ingest(DIGEST, BLOB.length, () => Promise.resolve(endless)),
        /received more than the expected/,
      );
      assert.ok(produced < 10 * 65536);
      assert.ok(endless.destroyed);
      assert.deepEqual(await filesIn(store), []);
    });
  });

  it('turns a broken stream into UnavailableError and keeps nothing', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      let sent = false;
      const broken = new Readable({
        read() {
          if (!sent) {
            sent = true;
            this.push(BLOB.subarray(0, 1000));
          } else {
            this.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
          }
        },
      });
      await assert.rejects(
        store.ingest(DIGEST, BLOB.length, () => Promise.resolve(broken)),
        (err: unknown) => {
          assert.ok(err instanceof UnavailableError);
          assert.match(err.message, /socket hang up/);
          return true;
        },
      );
      assert.deepEqual(await filesIn(store), []);
    });
  });

  it('passes typed errors from open() through', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      const notFound = new NotFoundError('blob', DIGEST);
      await assert.rejects(
        store.ingest(DIGEST, 1, () => Promise.reject(notFound)),
        (err: unknown) => err === notFound,
      );
      assert.deepEqual(await filesIn(store), []);
    });
  });

  it('shares one download between concurrent ingests of the same digest', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      let opens = 0;
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const open = async (): Promise<Readable> => {
        opens++;
        await gate;
        return chunked(BLOB);
      };
      const first = store.ingest(DIGEST, BLOB.length, open);
      const second = store.ingest(DIGEST, BLOB.length, open);
      release();
      await Promise.all([first, second]);
      assert.equal(opens, 1);
      assert.deepEqual(await store.readBytes(DIGEST), BLOB);
    });
  });

  it('does not download a blob it already has', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      await store.putBytes(DIGEST, BLOB);
      let opened = false;
      await store.ingest(DIGEST, BLOB.length, () => {
        opened = true;
        return Promise.resolve(chunked(BLOB));
      });
      assert.equal(opened, false);
    });
  });

  it('putBytes checks the digest too', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      await assert.rejects(store.putBytes(DIGEST, Buffer.from('something else')), UnavailableError);
      assert.equal(await store.has(DIGEST), false);
    });
  });

  it('deletes blobs idempotently; reading a missing blob is NotFound', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      await store.putBytes(DIGEST, BLOB);
      await store.delete(DIGEST);
      await store.delete(DIGEST);
      assert.equal(await store.has(DIGEST), false);
      await assert.rejects(store.readBytes(DIGEST), NotFoundError);
      assert.deepEqual(await store.list(), []);
    });
  });

  it('init() removes downloads a crash left behind and keeps complete blobs', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      await store.putBytes(DIGEST, BLOB);
      const leftover = path.join(store.root, 'sha256', `.ingest-${DIGEST.slice(7)}-deadbeef`);
      await fs.writeFile(leftover, 'half a blob');
      assert.deepEqual(await store.list(), [DIGEST]);
      await new ContentStore(store.root).init();
      assert.deepEqual(await filesIn(store), [DIGEST.slice(7)]);
    });
  });

  it('refuses malformed digests before touching the disk', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      for (const bad of [
        'sha256:../../etc/passwd',
        `sha256:${'A'.repeat(64)}`,
        `sha256:${'a'.repeat(63)}`,
        `sha256:${'a'.repeat(64)}/x`,
        `md5:${'a'.repeat(32)}`,
        'a'.repeat(64),
        '',
      ]) {
        assert.throws(() => store.path(bad), InvalidArgumentError, bad);
        assert.throws(() => parseDigest(bad), /is not a digest/);
        await assert.rejects(store.has(bad), InvalidArgumentError);
        await assert.rejects(
          store.ingest(bad, 1, () => Promise.resolve(Readable.from([Buffer.from('x')]))),
          InvalidArgumentError,
        );
      }
      await assert.rejects(
        store.ingest(DIGEST, -1, () => Promise.resolve(chunked(BLOB))),
        InvalidArgumentError,
      );
    });
  });
});
