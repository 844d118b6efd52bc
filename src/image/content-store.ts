/**
 * Blobs by digest: manifests, configs and compressed layers as the registry served them.
 *
 * Layout (docs/layers.md):
 *   <dir>/sha256/<hex>                   a complete, verified blob (sha512 digests: <dir>/sha512/<hex>)
 *   <dir>/sha256/.ingest-<hex>-<random>  a download in progress; init() deletes leftovers
 *
 * A blob becomes visible only by an atomic rename after its digest and size were checked and
 * its data fsynced, so a file under its final name is always complete and correct; the parent
 * directory is fsynced after the rename. Blobs stream to disk while being hashed; nothing is
 * buffered whole in memory. One download per digest at a time: concurrent ingests of the same
 * digest share the first one's result.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from '../util/atomic-file.js';
import { agedEntries, type AgedEntry } from '../util/orphans.js';
import { Readable } from 'node:stream';
import {
  CrispError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
} from '../errors.js';

export type DigestAlgorithm = 'sha256' | 'sha512';

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const TEMP_PREFIX = '.ingest-';
const ALGORITHMS: readonly DigestAlgorithm[] = ['sha256', 'sha512'];

/**
 * Splits and validates `sha256:<64 hex>` / `sha512:<128 hex>` (lowercase, as the OCI spec
 * requires), so a digest can never name a path outside the store.
 */
export function parseDigest(digest: string, field = 'digest'): ParsedDigest {
  if (!DIGEST_RE.test(digest)) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(digest)} is not a digest (expected sha256:<64 hex> or sha512:<128 hex>, lowercase)`,
    );
  }
  const [algorithm, hex] = digest.split(':') as [DigestAlgorithm, string];
  return { algorithm, hex };
}

export class ContentStore {
  readonly root: string;
  readonly #inflight = new Map<string, Promise<void>>();

  constructor(dir: string /* <root_dir>/blobs */) {
    this.root = path.resolve(dir);
  }

  /**
   * Creates the directories and deletes downloads a crash left half-written (unless
   * `removeTemps` is false: the daemon's orphan reconciler then removes and counts them).
   */
  async init(opts: { removeTemps?: boolean } = {}): Promise<void> {
    for (const algorithm of ALGORITHMS) {
      const dir = path.join(this.root, algorithm);
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      if (opts.removeTemps === false) continue;
      for (const name of await fs.readdir(dir)) {
        if (name.startsWith(TEMP_PREFIX)) await fs.rm(path.join(dir, name), { force: true });
      }
    }
  }

  /**
   * Downloads left half-written (`.ingest-*`), with their mtimes. Whether one is still being
   * written is for the caller to know (the image service lists them only while no pull runs).
   */
  async temps(): Promise<AgedEntry[]> {
    const out: AgedEntry[] = [];
    for (const algorithm of ALGORITHMS) {
      const entries = await agedEntries(path.join(this.root, algorithm));
      out.push(...entries.filter((e) => e.name.startsWith(TEMP_PREFIX)));
    }
    return out;
  }

  /** Removes one entry `temps()` returned (and nothing else). */
  async removeTemp(p: string): Promise<void> {
    const dir = path.dirname(p);
    if (
      !ALGORITHMS.some((a) => dir === path.join(this.root, a)) ||
      !path.basename(p).startsWith(TEMP_PREFIX)
    ) {
      throw new InternalError(`${p} is not a download in progress of ${this.root}`);
    }
    await fs.rm(p, { force: true });
  }

  /** Where the blob lives (or will live): `<dir>/sha256/<hex>`. */
  path(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return path.join(this.root, algorithm, hex);
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await fs.stat(this.path(digest))).isFile();
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  /**
   * Stores the blob `digest` from the stream `open()` gives, unless it is already stored (then
   * `open` is never called). `size`, when known, is enforced: a longer stream is cut off and a
   * shorter one refused. `onBytes` gets the size of each chunk as it is written (increments,
   * not totals). A second call for a digest that is being ingested waits for the first and
   * shares its outcome; its own `open` and `onBytes` are not used.
   *
   * A digest or size mismatch and a broken stream are UnavailableErrors (the data came from a
   * registry; trying again, or another mirror, may succeed). Nothing is left behind on failure.
   */
  ingest(
    digest: string,
    size: number | undefined,
    open: () => Promise<Readable>,
    onBytes?: (n: number) => void,
  ): Promise<void> {
    let parsed: ParsedDigest;
    try {
      parsed = parseDigest(digest);
      if (size !== undefined && !(Number.isSafeInteger(size) && size >= 0)) {
        throw new InvalidArgumentError('size', `${size} is not a byte count (blob ${digest})`);
      }
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new InternalError(String(err)));
    }
    const running = this.#inflight.get(digest);
    if (running) return running;
    const work = this.#ingest(digest, parsed, size, open, onBytes).finally(() => {
      this.#inflight.delete(digest);
    });
    this.#inflight.set(digest, work);
    return work;
  }

  /** Stores bytes the caller already holds (a manifest, a config); checked like ingest(). */
  putBytes(digest: string, bytes: Buffer): Promise<void> {
    return this.ingest(digest, bytes.length, () => Promise.resolve(Readable.from([bytes])));
  }

  /** The whole blob; for small ones (manifests, configs). NotFoundError when absent. */
  async readBytes(digest: string): Promise<Buffer> {
    try {
      return await fs.readFile(this.path(digest));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new NotFoundError('blob', digest, { cause: err });
      throw err;
    }
  }

  /** Removes the blob; removing an absent blob is not an error. */
  async delete(digest: string): Promise<void> {
    await fs.rm(this.path(digest), { force: true });
  }

  /** Every stored blob's digest, sorted. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const algorithm of ALGORITHMS) {
      let names: string[];
      try {
        names = await fs.readdir(path.join(this.root, algorithm));
      } catch (err) {
        if (isErrno(err, 'ENOENT')) continue;
        throw err;
      }
      for (const name of names) {
        const digest = `${algorithm}:${name}`;
        if (DIGEST_RE.test(digest)) out.push(digest);
      }
    }
    return out.sort();
  }

  async #ingest(
    digest: string,
    { algorithm, hex }: ParsedDigest,
    size: number | undefined,
    open: () => Promise<Readable>,
    onBytes: ((n: number) => void) | undefined,
  ): Promise<void> {
    if (await this.has(digest)) return;
    const dir = path.join(this.root, algorithm);
    const final = path.join(dir, hex);
    const temp = path.join(dir, `${TEMP_PREFIX}${hex}-${randomBytes(6).toString('hex')}`);
    let handle: FileHandle | undefined;
    let committed = false;
    try {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      handle = await fs.open(temp, 'wx', 0o644);
      const hash = createHash(algorithm);
      let received = 0;
      const stream = await this.#open(digest, open);
      const chunks = (stream as AsyncIterable<unknown>)[Symbol.asyncIterator]();
      try {
        for (;;) {
          let next: IteratorResult<unknown>;
          try {
            next = await chunks.next();
          } catch (err) {
            throw streamError(digest, err);
          }
          if (next.done) break;
          const buf = toBuffer(next.value);
          received += buf.length;
          if (size !== undefined && received > size) {
            throw new UnavailableError(`blob ${digest}: received more than the expected ${size} bytes`, {
              details: { digest, expectedSize: size },
            });
          }
          hash.update(buf);
          await writeAll(handle, buf);
          onBytes?.(buf.length);
        }
      } finally {
        stream.destroy();
      }
      if (size !== undefined && received < size) {
        throw new UnavailableError(
          `blob ${digest}: the download ended after ${received} of ${size} bytes (truncated)`,
          { details: { digest, expectedSize: size, receivedSize: received } },
        );
      }
      const actual = `${algorithm}:${hash.digest('hex')}`;
      if (actual !== digest) {
        throw new UnavailableError(`blob ${digest}: the downloaded content has digest ${actual}`, {
          details: { digest, actualDigest: actual, size: received },
        });
      }
      await handle.sync();
      await handle.close();
      handle = undefined;
      await fs.rename(temp, final);
      committed = true;
      await fsyncDir(dir);
    } catch (err) {
      throw diskError(digest, err);
    } finally {
      await handle?.close().catch(() => undefined);
      if (!committed) await fs.rm(temp, { force: true });
    }
  }

  async #open(digest: string, open: () => Promise<Readable>): Promise<Readable> {
    try {
      return await open();
    } catch (err) {
      throw streamError(digest, err);
    }
  }
}

/** A failure of the source: CrispErrors (from the registry client) pass; others are Unavailable. */
function streamError(digest: string, err: unknown): CrispError {
  if (err instanceof CrispError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new UnavailableError(`blob ${digest}: download failed: ${message}`, { cause: err });
}

/** Local filesystem failures become typed errors; everything else passes. */
function diskError(digest: string, err: unknown): unknown {
  if (err instanceof CrispError) return err;
  if (isErrno(err, 'ENOSPC') || isErrno(err, 'EDQUOT')) {
    return new ResourceExhaustedError(`no space left to store blob ${digest}`, { cause: err });
  }
  return new InternalError(`storing blob ${digest} failed`, { cause: err });
}

function isErrno(err: unknown, code?: string): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err && (code === undefined || err.code === code);
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk);
  throw new InternalError(`blob stream produced a ${typeof chunk}, not bytes`);
}

async function writeAll(handle: FileHandle, buf: Buffer): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await handle.write(buf, done, buf.length - done);
    done += bytesWritten;
  }
}
