/**
 * Unpacked image layers, one overlayfs lower directory per diffID (docs/layers.md).
 *
 *   <dir>/<hex>/diff            the layer's changeset in overlay form: the lowerdir
 *   <dir>/<hex>/complete.json   the completion marker, written last; has() trusts nothing else
 *   <dir>/.tmp-<hex>-<random>/  an unpack in progress (init() removes leftovers)
 *   <dir>/.del-<hex>-<random>/  a delete in progress (init() finishes it)
 *
 * unpack() streams the blob through the decompressor and a sha256 of the uncompressed tar,
 * into tar-unpack.ts, in one pass. A digest other than the diffID fails the unpack. Only a
 * fully written and verified layer is committed:
 *   syncfs → marker (fsynced) → fsync temp dir → rename to <hex> → fsync <dir>.
 * A crash at any point leaves either a committed layer or a temp dir that init() removes.
 * delete() first renames the layer out of the way, so a half-deleted layer is never mistaken
 * for a complete one.
 *
 * This store keeps no reference counts. The image service calls delete() for layers that no
 * image uses.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir, writeNewFileSynced } from '../util/atomic-file.js';
import { agedEntries, type AgedEntry } from '../util/orphans.js';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CanceledError,
  CrispError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
} from '../errors.js';
import type { Logger } from '../log/logger.js';
import { runCommand } from '../util/command.js';
import { parseDigest } from './content-store.js';
import {
  createDecompressor,
  declaredCompression,
  isDecompressError,
  sniffCompression,
  type LayerCompression,
} from './layer-decompress.js';
import { unpackTar } from './tar-unpack.js';
import { diskUsage } from '../util/disk-usage.js';

export interface LayerStoreOptions {
  log: Logger;
}

/** What the completion marker records about a committed layer. */
export interface LayerInfo {
  diffId: string;
  /** Bytes of the uncompressed tar (what the diffID is the digest of). */
  size: number;
  /** Entries written and bytes of regular-file content (tar-unpack's stats). */
  files: number;
  contentBytes: number;
  /** The compression found in the blob (which wins over the media type). */
  compression: LayerCompression;
  mediaType: string;
  unpackedAt: string;
}

const MARKER = 'complete.json';
const DIFF = 'diff';
const TEMP_PREFIX = '.tmp-';
const TRASH_PREFIX = '.del-';
const HEX_RE = /^[a-f0-9]{64}$/;

interface Job {
  promise: Promise<{ size: number }>;
  controller: AbortController;
  waiters: number;
}

export class LayerStore {
  readonly root: string;
  readonly #log: Logger;
  /** Measured usage of complete layers (immutable, so measured once). */
  readonly #usageCache = new Map<string, { bytes: number; inodes: number }>();
  readonly #jobs = new Map<string, Job>();

  constructor(dir: string /* <root_dir>/layers */, opts: LayerStoreOptions) {
    this.root = path.resolve(dir);
    this.#log = opts.log;
  }

  /**
   * Creates the directory and removes what a crash left:
   * - unpacks that had not finished (`.tmp-*`);
   * - deletes that had not finished (`.del-*`);
   * - layer directories without a valid completion marker.
   * With `removeTemps` false the first two are left to the daemon's orphan reconciler, which
   * removes and counts them.
   */
  async init(opts: { removeTemps?: boolean } = {}): Promise<void> {
    await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
    for (const name of await fs.readdir(this.root)) {
      const where = path.join(this.root, name);
      if (opts.removeTemps === false && (name.startsWith(TEMP_PREFIX) || name.startsWith(TRASH_PREFIX))) {
        continue;
      } else if (name.startsWith(TEMP_PREFIX)) {
        this.#log.info({ path: where }, 'removing a layer unpack interrupted by a crash');
        await fs.rm(where, { recursive: true, force: true });
      } else if (name.startsWith(TRASH_PREFIX)) {
        this.#log.info({ path: where }, 'finishing a layer delete interrupted by a crash');
        await fs.rm(where, { recursive: true, force: true });
      } else if (HEX_RE.test(name)) {
        if ((await this.#readMarker(name)) === undefined) {
          this.#log.warn({ path: where }, 'removing a layer directory without a valid completion marker');
          await fs.rm(where, { recursive: true, force: true });
        }
      } else {
        this.#log.warn({ path: where }, 'unexpected entry in the layer store; leaving it alone');
      }
    }
  }

  /** The layer's lowerdir, `<dir>/<hex>/diff`. */
  dir(diffId: string): string {
    return path.join(this.root, parseDiffId(diffId), DIFF);
  }

  /** True only for a committed layer (its completion marker is present and valid). */
  async has(diffId: string): Promise<boolean> {
    return (await this.#readMarker(parseDiffId(diffId))) !== undefined;
  }

  /** The marker of a committed layer, or undefined. */
  async info(diffId: string): Promise<LayerInfo | undefined> {
    return this.#readMarker(parseDiffId(diffId));
  }

  /**
   * Unpacks the layer blob at `blobPath` (compressed as `mediaType` says, or as its first bytes
   * show) unless the layer is already committed. Resolves to `size`: the bytes of the
   * uncompressed tar.
   *
   * Concurrent calls for one diffID share a single unpack. A caller whose `signal` fires stops
   * waiting at once (CanceledError); the unpack itself is cancelled only when every caller has
   * gone, and then leaves nothing behind.
   *
   * Errors:
   * - the content does not hash to the diffID, the blob cannot be decompressed, or the tar is
   *   invalid or hostile → FailedPreconditionError. The image cannot be used, and the blob was
   *   already digest-checked, so retrying would not help.
   * - the blob file is missing → NotFoundError;
   * - the disk is full → ResourceExhaustedError;
   * - a cancelled unpack → CanceledError.
   */
  async unpack(
    diffId: string,
    blobPath: string,
    mediaType: string,
    signal?: AbortSignal,
  ): Promise<{ size: number }> {
    const hex = parseDiffId(diffId);
    if (signal?.aborted) throw canceled(diffId);
    let job = this.#jobs.get(hex);
    if (!job) {
      const controller = new AbortController();
      const created: Job = {
        promise: this.#unpackOnce(diffId, hex, blobPath, mediaType, controller.signal).finally(() => {
          if (this.#jobs.get(hex) === created) this.#jobs.delete(hex);
        }),
        controller,
        waiters: 0,
      };
      created.promise.catch(() => undefined); // every waiter may have gone
      this.#jobs.set(hex, created);
      job = created;
    }
    job.waiters++;
    try {
      return await waitFor(job.promise, signal, diffId);
    } finally {
      job.waiters--;
      if (job.waiters === 0 && signal?.aborted) {
        // The last interested caller left: stop the work; a later call starts afresh.
        job.controller.abort();
        if (this.#jobs.get(hex) === job) this.#jobs.delete(hex);
      }
    }
  }

  /** Removes the layer (waiting for an unpack of it in flight); an absent layer is not an error. */
  async delete(diffId: string): Promise<void> {
    const hex = parseDiffId(diffId);
    await this.#jobs.get(hex)?.promise.catch(() => undefined);
    this.#usageCache.delete(diffId);
    const trash = path.join(this.root, `${TRASH_PREFIX}${hex}-${randomBytes(6).toString('hex')}`);
    try {
      await fs.rename(path.join(this.root, hex), trash);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    await fs.rm(trash, { recursive: true, force: true });
  }

  /**
   * Unpacks and deletes left unfinished (`.tmp-*`, `.del-*`), with their mtimes. Whether one is
   * still under way is for the caller to know (the image service lists them only while no pull
   * or collection runs).
   */
  async temps(): Promise<AgedEntry[]> {
    return (await agedEntries(this.root)).filter(
      (e) => e.name.startsWith(TEMP_PREFIX) || e.name.startsWith(TRASH_PREFIX),
    );
  }

  /** Removes one entry `temps()` returned (and nothing else). */
  async removeTemp(p: string): Promise<void> {
    const name = path.basename(p);
    if (path.dirname(p) !== this.root || !(name.startsWith(TEMP_PREFIX) || name.startsWith(TRASH_PREFIX))) {
      throw new InternalError(`${p} is not an unfinished unpack or delete of ${this.root}`);
    }
    await fs.rm(p, { recursive: true, force: true });
  }

  /** The diffIDs of all committed layers, sorted. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const name of await fs.readdir(this.root)) {
      if (HEX_RE.test(name) && (await this.#readMarker(name)) !== undefined) out.push(`sha256:${name}`);
    }
    return out.sort();
  }

  /**
   * Disk space (allocated blocks) and inodes used under the store's directory, temp dirs
   * included. Hard-linked files count once.
   */
  /**
   * Disk blocks and inodes the store uses. A complete layer never changes, so each one is
   * measured once (walking its tree) and remembered until it is deleted; the cost of a call
   * is one walk per new layer, not one walk of the whole store.
   */
  async usage(): Promise<{ bytes: number; inodes: number }> {
    const rootStat = await fs.lstat(this.root);
    let bytes = rootStat.blocks * 512;
    let inodes = 1;
    for (const diffId of await this.list()) {
      let known = this.#usageCache.get(diffId);
      if (!known) {
        const walked = await diskUsage(path.join(this.root, parseDiffId(diffId)));
        known = { bytes: Number(walked?.bytes ?? 0n), inodes: Number(walked?.inodes ?? 0n) };
        this.#usageCache.set(diffId, known);
      }
      bytes += known.bytes;
      inodes += known.inodes;
    }
    return { bytes, inodes };
  }

  // --- unpacking ---------------------------------------------------------------------------

  async #unpackOnce(
    diffId: string,
    hex: string,
    blobPath: string,
    mediaType: string,
    signal: AbortSignal,
  ): Promise<{ size: number }> {
    const existing = await this.#readMarker(hex);
    if (existing) return { size: existing.size };
    const final = path.join(this.root, hex);
    const temp = path.join(this.root, `${TEMP_PREFIX}${hex}-${randomBytes(6).toString('hex')}`);
    const started = performance.now();
    try {
      // A directory without a valid marker is an unpack that never completed; nobody uses it.
      await fs.rm(final, { recursive: true, force: true });
      await fs.mkdir(temp, { mode: 0o700 });
      const diff = path.join(temp, DIFF);
      await fs.mkdir(diff, { mode: 0o755 });
      await fs.chmod(diff, 0o755);
      const info = await this.#extract(diffId, blobPath, mediaType, diff, signal);
      // Durability: the data first (syncfs of the whole filesystem; one call instead of an
      // fsync per file), then the marker, then the rename that publishes it.
      await this.#syncfs(diffId, temp, signal);
      await writeNewFileSynced(path.join(temp, MARKER), `${JSON.stringify(info, null, 2)}\n`);
      await fsyncDir(temp);
      if (signal.aborted) throw canceled(diffId);
      await fs.rename(temp, final);
      await fsyncDir(this.root);
      this.#log.info(
        { diffId, size: info.size, files: info.files, durationMs: Math.round(performance.now() - started) },
        'layer unpacked',
      );
      return { size: info.size };
    } catch (err) {
      await fs.rm(temp, { recursive: true, force: true }).catch((rmErr: unknown) => {
        this.#log.warn({ diffId, path: temp, err: rmErr }, 'could not remove a failed layer unpack');
      });
      throw storeError(diffId, err);
    }
  }

  async #extract(
    diffId: string,
    blobPath: string,
    mediaType: string,
    diff: string,
    signal: AbortSignal,
  ): Promise<LayerInfo> {
    const compression = sniffCompression(await readHead(diffId, blobPath, 4));
    const declared = declaredCompression(mediaType);
    if (declared === undefined) {
      this.#log.warn(
        { diffId, mediaType, compression },
        'unknown layer media type; going by the blob content',
      );
    } else if (declared !== compression) {
      this.#log.warn(
        { diffId, mediaType, compression },
        'layer media type does not match the blob content; going by the content',
      );
    }
    const file = createReadStream(blobPath);
    const digester = new Digester();
    const upstream =
      compression === 'none'
        ? pipeline(file, digester)
        : pipeline(file, createDecompressor(compression), digester);
    const unpacking = unpackTar(digester, diff, { label: `layer ${diffId}`, signal, log: this.#log });
    const [read, unpacked] = await Promise.allSettled([upstream, unpacking]);
    if (read.status === 'rejected' && isDecompressError(read.reason)) {
      throw new FailedPreconditionError(
        `layer ${diffId}: the blob is not valid ${compression} data (${messageOf(read.reason)}); it is corrupt or truncated`,
        { cause: read.reason, details: { diffId, blobPath, mediaType } },
      );
    }
    if (unpacked.status === 'rejected') {
      if (unpacked.reason instanceof CrispError) throw unpacked.reason;
      throw new InternalError(`layer ${diffId}: reading ${blobPath} failed`, { cause: unpacked.reason });
    }
    if (read.status === 'rejected') {
      throw new InternalError(`layer ${diffId}: reading ${blobPath} failed`, { cause: read.reason });
    }
    const actual = digester.digest();
    if (actual !== diffId) {
      throw new FailedPreconditionError(
        `layer ${diffId}: the uncompressed content has digest ${actual}, not the diffID ${diffId} from the image config`,
        { details: { diffId, actualDiffId: actual, blobPath, mediaType } },
      );
    }
    return {
      diffId,
      size: digester.size,
      files: unpacked.value.files,
      contentBytes: unpacked.value.bytes,
      compression,
      mediaType,
      unpackedAt: new Date().toISOString(),
    };
  }

  /** syncfs(2) through coreutils `sync -f` (Node has no syncfs). */
  async #syncfs(diffId: string, dir: string, signal: AbortSignal): Promise<void> {
    try {
      await runCommand('sync', ['-f', dir], { signal, timeoutMs: 120_000 }, (fields, msg) => {
        this.#log.debug(fields, msg);
      });
    } catch (err) {
      if (signal.aborted) throw canceled(diffId);
      throw new InternalError(`layer ${diffId}: syncing the unpacked files to disk failed`, { cause: err });
    }
  }

  async #readMarker(hex: string): Promise<LayerInfo | undefined> {
    let text: string;
    try {
      text = await fs.readFile(path.join(this.root, hex, MARKER), 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
      throw err;
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (
        typeof parsed === 'object' &&
        parsed !== null &&
        Reflect.get(parsed, 'diffId') === `sha256:${hex}` &&
        typeof Reflect.get(parsed, 'size') === 'number'
      ) {
        return parsed as LayerInfo;
      }
    } catch {
      // fall through: an unreadable marker is no marker
    }
    return undefined;
  }
}

/** Hashes (sha256) and counts the bytes passing through. */
class Digester extends Transform {
  readonly #hash = createHash('sha256');
  size = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    this.size += chunk.length;
    callback(null, chunk);
  }

  digest(): string {
    return `sha256:${this.#hash.digest('hex')}`;
  }
}

function parseDiffId(diffId: string): string {
  const { algorithm, hex } = parseDigest(diffId, 'diffId');
  if (algorithm !== 'sha256') {
    throw new InvalidArgumentError('diffId', `${JSON.stringify(diffId)}: layer diffIDs are sha256 digests`);
  }
  return hex;
}

function canceled(diffId: string): CanceledError {
  return new CanceledError(`unpacking layer ${diffId} was cancelled`);
}

/** Resolves or rejects with `promise`, or rejects with CanceledError as soon as `signal` fires. */
function waitFor<T>(promise: Promise<T>, signal: AbortSignal | undefined, diffId: string): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(canceled(diffId));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new InternalError(String(err)));
      },
    );
  });
}

async function readHead(diffId: string, blobPath: string, n: number): Promise<Buffer> {
  let handle;
  try {
    handle = await fs.open(blobPath, 'r');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) {
      throw new NotFoundError('blob file', blobPath, {
        cause: err,
        hint: `needed to unpack layer ${diffId}`,
      });
    }
    throw err;
  }
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await handle.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function storeError(diffId: string, err: unknown): CrispError {
  if (err instanceof CrispError) return err;
  if (isErrno(err, 'ENOSPC') || isErrno(err, 'EDQUOT')) {
    return new ResourceExhaustedError(`no space left to unpack layer ${diffId}`, { cause: err });
  }
  return new InternalError(`unpacking layer ${diffId} failed`, { cause: err });
}

function isErrno(err: unknown, code: string): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err && err.code === code;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
