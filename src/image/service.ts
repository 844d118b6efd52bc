/**
 * The image engine: pulls, lookups, removal and garbage collection over the content store,
 * the layer store and the image records in the state store. Records are written only after
 * everything they point to is on disk; on removal the record goes first and unreferenced
 * layers and blobs follow, so a crash at any point leaves at worst unreferenced files, which
 * the collection at start-up deletes.
 */
import {
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  toCrispError,
} from '../errors.js';
import type { Logger } from '../log/logger.js';
import { StoreBatch } from '../store/batch.js';
import { IntentJournal, type Intent } from '../store/intents.js';
import { failpoint } from '../util/failpoint.js';
import type { ImageRecord, RecordInput } from '../store/records.js';
import type { StateStore } from '../store/state-store.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { agedEntries, reap, removeUnmountedTree, type OrphanPass } from '../util/orphans.js';
import { credentialsFromAuthConfig, loadAuthFile } from './auth.js';
import type { ContentStore } from './content-store.js';
import { importImages } from './importer.js';
import { LayerCache } from './layer-cache.js';
import { storeLocalImage } from './local-image.js';
import { BUILTIN_PAUSE_IMAGE, buildPauseImage } from './pause.js';
import type { LayerStore } from './layer-store.js';
import { pullReference, type PulledImage } from './puller.js';
import { isIdPrefix, isImageId, normaliseImageId, parseReference, withDigest } from './reference.js';
import type { RegistriesPolicy } from './registries.js';
import type { RegistryClient } from './registry-client.js';
import type { AuthConfigInput, Credentials, ImageReference, PullSource } from './types.js';

/** An image as the engine records it (what the CRI layer converts to an Image message). */
export type StoredImage = ImageRecord;

export interface ImageServiceConfig {
  /** Node-level auth file ('' for none). */
  authFile: string;
  /** A whole pull (all sources, all layers) is abandoned after this long. */
  pullTimeoutMs: number;
}

/** What the daemon wants to hear about pulls (it turns this into metrics). */
export interface PullObserver {
  pullFinished(result: 'success' | 'failure', seconds: number): void;
  pullBytes(n: number): void;
}

export interface ImageServiceDeps {
  store: StateStore;
  content: ContentStore;
  layers: LayerStore;
  client: RegistryClient;
  registries: () => Promise<RegistriesPolicy>;
  log: Logger;
  observer?: PullObserver;
}

export interface FsUsage {
  mountpoint: string;
  usedBytes: number;
  inodesUsed: number;
  timestampNs: string;
}

/** An image whose blobs are already local (the pause image, an imported archive). */
export interface LocalImage {
  pulled: PulledImage;
  tags: string[];
  repoDigests: string[];
  pinned: boolean;
}

const IMAGES_LOCK = 'images';
const FS_INFO_TTL_MS = 5_000;

function nowNs(): string {
  return (BigInt(Date.now()) * 1_000_000n).toString();
}

export class ImageService {
  private readonly mutex = new KeyedMutex();
  private readonly layerCache: LayerCache;
  private activePulls = 0;
  private collectPending = false;
  /**
   * The collection under way, if any. A collection starts only while no pull runs, and a pull
   * that starts meanwhile waits for it before touching the stores, so a collection never deletes
   * a blob or layer a pull has just written and not yet recorded.
   */
  private collecting: Promise<void> | undefined;
  private fsInfoCache: { at: number; value: FsUsage } | undefined;
  private readonly journal: IntentJournal;

  constructor(
    private readonly deps: ImageServiceDeps,
    private readonly config: ImageServiceConfig,
  ) {
    this.layerCache = new LayerCache(deps.content, deps.layers);
    this.journal = new IntentJournal(deps.store);
  }

  /** The layer store's directory (overlay lowerdirs are below it). */
  get layersRoot(): string {
    return this.deps.layers.root;
  }

  get layerSource(): LayerCache {
    return this.layerCache;
  }

  /** Prepares the stores and (unless told not to) deletes what a crash left unreferenced. */
  async init(opts: { collect?: boolean } = {}): Promise<void> {
    // The daemon leaves unreferenced blobs and layers, and half-written downloads and unpacks, to
    // the orphan reconciler's start-up pass, which counts what it finds.
    const removeTemps = opts.collect !== false;
    await this.deps.content.init({ removeTemps });
    await this.deps.layers.init({ removeTemps });
    // Pulls a crash cut short: what they wrote belongs to no image, so the collection (here, or
    // the orphan reconciler's start-up pass) deletes it, partial downloads and unpacks included.
    const cut = this.journal.list('pull-image');
    if (cut.length > 0) {
      this.deps.log.warn(
        { images: cut.map((i) => i.target) },
        'image pulls were cut short by a crash; their partial layers and blobs are removed',
      );
      const batch = new StoreBatch();
      for (const i of cut) batch.delIntent(i.id);
      await this.deps.store.commit(batch);
    }
    if (opts.collect !== false) await this.collect();
  }

  // --- lookups -------------------------------------------------------------------------------

  list(): ImageRecord[] {
    return this.deps.store.listImages();
  }

  /**
   * Finds an image by id, unique id prefix, tag or digest reference ("busybox",
   * "docker.io/library/busybox:latest", "x@sha256:…", "sha256:…"). Undefined if absent, and for a
   * name that is none of these (no image can have it), as containerd's and CRI-O's lookups answer.
   */
  async resolve(spec: string): Promise<ImageRecord | undefined> {
    const trimmed = spec.trim();
    if (trimmed === '') throw new InvalidArgumentError('image', 'required, got an empty string');
    if (isImageId(trimmed)) return this.deps.store.getImage(normaliseImageId(trimmed));
    const byRef = await this.findByReference(trimmed);
    if (byRef) return byRef;
    return this.findByIdPrefix(trimmed);
  }

  private async findByReference(spec: string): Promise<ImageRecord | undefined> {
    let ref: ImageReference;
    try {
      ref = parseReference(spec);
    } catch (err) {
      // Not a reference: an id prefix, or the name of no image.
      if (err instanceof InvalidArgumentError) return undefined;
      throw err;
    }
    const candidates = ref.shortName ? (await this.deps.registries()).candidates(ref) : [ref];
    for (const candidate of candidates) {
      const found = this.deps.store
        .listImages()
        .find((img) => img.repoTags.includes(candidate.full) || img.repoDigests.includes(candidate.full));
      if (found) return found;
    }
    return undefined;
  }

  private findByIdPrefix(spec: string): ImageRecord | undefined {
    const hex = spec.startsWith('sha256:') ? spec.slice(7) : spec;
    if (!isIdPrefix(spec)) return undefined;
    const matches = this.deps.store.listImages().filter((img) => img.id.startsWith(`sha256:${hex}`));
    if (matches.length > 1) {
      throw new InvalidArgumentError(
        'image',
        `id prefix "${spec}" matches ${matches.length} images; give more of the id`,
      );
    }
    return matches[0];
  }

  /** The overlay lowerdirs of an image, top layer first (overlayfs order). */
  layerDirs(image: ImageRecord): string[] {
    return [...image.layers].reverse().map((l) => this.deps.layers.dir(l.diffId));
  }

  // --- pull ----------------------------------------------------------------------------------

  /** Pulls `spec` and returns the image id. */
  async pull(spec: string, auth: AuthConfigInput | undefined, callerSignal: AbortSignal): Promise<string> {
    const ref = parseReference(spec);
    const started = performance.now();
    const signal = AbortSignal.any([callerSignal, AbortSignal.timeout(this.config.pullTimeoutMs)]);
    return this.#storing(async () => {
      // Durable before the first byte lands: a crash mid-pull is then known at the next start.
      const intent = await this.journal.begin('pull-image', ref.full, 'pulling');
      try {
        const policy = await this.deps.registries();
        const candidates = policy.candidates(ref);
        let lastError: unknown;
        for (const candidate of candidates) {
          try {
            const pulled = await pullReference(
              {
                client: this.deps.client,
                content: this.deps.content,
                layers: this.layerCache,
                log: this.deps.log,
                onBytes: (n) => this.deps.observer?.pullBytes(n),
              },
              {
                ref: candidate,
                sources: policy.sources(candidate),
                credentialsFor: (source) => this.credentialsFor(candidate, source, auth),
              },
              signal,
            );
            failpoint('pull-image:before-commit');
            await this.commit(
              {
                pulled,
                tags: candidate.tag === undefined ? [] : [candidate.full],
                repoDigests: [withDigest(candidate, pulled.topDigest).full],
                pinned: false,
              },
              intent,
            );
            const seconds = (performance.now() - started) / 1000;
            this.deps.observer?.pullFinished('success', seconds);
            this.deps.log.info(
              {
                image: candidate.full,
                id: pulled.id,
                from: pulled.endpoint,
                durationMs: Math.round(seconds * 1000),
              },
              'pulled image',
            );
            return pulled.id;
          } catch (err) {
            lastError = err;
            if (signal.aborted) break;
            // A short name is tried on the next search registry only when this one lacks it.
            if (!(err instanceof NotFoundError) || candidates.length === 1) break;
          }
        }
        throw this.pullError(ref, lastError, signal, callerSignal);
      } catch (err) {
        this.deps.observer?.pullFinished('failure', (performance.now() - started) / 1000);
        await intent.done().catch((doneErr: unknown) => {
          // Left for the next start, which drops it; the pull's own error is the one to report.
          this.deps.log.warn({ image: ref.full, err: doneErr }, 'cannot end the intent of a failed pull');
        });
        throw err;
      }
    });
  }

  private pullError(
    ref: ImageReference,
    err: unknown,
    signal: AbortSignal,
    callerSignal: AbortSignal,
  ): Error {
    if (signal.aborted && !callerSignal.aborted) {
      return new DeadlineExceededError(
        `pulling image ${ref.full} took longer than ${Math.round(this.config.pullTimeoutMs / 1000)} s and was abandoned; raise image.pull_timeout_seconds for very large images`,
      );
    }
    return toCrispError(err, `pulling image ${ref.full} failed`);
  }

  private async credentialsFor(
    ref: ImageReference,
    source: PullSource,
    auth: AuthConfigInput | undefined,
  ): Promise<Credentials> {
    // Credentials from the kubelet are for the registry the reference names; a mirror gets
    // only what the node's auth file holds for it.
    if (!source.mirror) {
      const fromRequest = credentialsFromAuthConfig(auth, ref.registry);
      if (fromRequest) return fromRequest;
    }
    if (this.config.authFile === '') return { kind: 'anonymous' };
    const file = await loadAuthFile(this.config.authFile);
    if (!file.exists) {
      this.deps.log.warn(
        { authFile: this.config.authFile },
        'image.auth_file does not exist; pulling anonymously',
      );
    }
    const registry = source.mirror ? source.endpoint : ref.registry;
    return file.lookup(registry, source.mirror ? source.repository : ref.repository) ?? { kind: 'anonymous' };
  }

  // --- local images --------------------------------------------------------------------------

  /** Builds (or finds) the built-in pause image from the host's catatonit; returns its id. */
  async ensureBuiltinPause(catatonitPath?: string): Promise<string> {
    const built = await buildPauseImage(catatonitPath);
    const ref = parseReference(BUILTIN_PAUSE_IMAGE);
    // Like a pull: no collection may run while its blobs are stored but not yet recorded.
    return this.#storing(async () => {
      const pulled = await storeLocalImage(this.deps.content, this.layerCache, {
        manifestBytes: built.manifestBytes,
        configBytes: built.configBytes,
        layers: [built.layer],
      });
      await this.commit({
        pulled,
        tags: [ref.full],
        repoDigests: [withDigest(ref, pulled.topDigest).full],
        pinned: true,
      });
      return pulled.id;
    });
  }

  /**
   * Imports every image of an OCI layout directory or an image archive. `name` (a reference)
   * tags the image when the archive holds exactly one; otherwise the archive's own names are used.
   */
  async importImages(path: string, scratchDir: string, name?: string): Promise<ImageRecord[]> {
    const tagOverride = name === undefined ? undefined : parseReference(name);
    if (tagOverride && tagOverride.tag === undefined) {
      throw new InvalidArgumentError('name', `"${name}" has a digest; give a tag to name an imported image`);
    }
    return this.#storing(async () => {
      const imported = await importImages(path, scratchDir, this.deps.content, this.layerCache);
      if (tagOverride && imported.length !== 1) {
        throw new InvalidArgumentError(
          'name',
          `${path} holds ${imported.length} images; --name needs exactly one`,
        );
      }
      const records: ImageRecord[] = [];
      for (const image of imported) {
        const tags = tagOverride ? [tagOverride.full] : image.tags;
        const repoDigests = tags.map((t) => withDigest(parseReference(t), image.pulled.topDigest).full);
        records.push(await this.commit({ pulled: image.pulled, tags, repoDigests, pinned: false }));
      }
      return records;
    });
  }

  /**
   * Runs `fn`, which stores blobs and layers and records them (a pull, an import, a local
   * image): it first waits out a collection under way, no collection starts while it runs, and a
   * collection asked for meanwhile runs once the last such work ends.
   */
  async #storing<T>(fn: () => Promise<T>): Promise<T> {
    this.activePulls += 1;
    try {
      await this.collecting;
      return await fn();
    } finally {
      this.activePulls -= 1;
      if (this.#collectWanted()) void this.collectLogged();
    }
  }

  // --- records -------------------------------------------------------------------------------

  /** Records an image whose blobs and layers are on disk; moves its tags off other images. */
  async commit(local: LocalImage, intent?: Intent): Promise<ImageRecord> {
    return this.mutex.run(IMAGES_LOCK, async () => {
      const { store } = this.deps;
      const { pulled } = local;
      // The pull's intent ends in the batch that records its image.
      const batch = intent ? intent.doneIn(new StoreBatch()) : new StoreBatch();
      for (const other of store.listImages()) {
        if (other.id === pulled.id) continue;
        const kept = other.repoTags.filter((t) => !local.tags.includes(t));
        if (kept.length !== other.repoTags.length) batch.putImage({ ...other, repoTags: kept });
      }
      const existing = store.getImage(pulled.id);
      const union = (a: readonly string[], b: readonly string[]): string[] => [...new Set([...a, ...b])];
      const record: RecordInput<'image'> = {
        id: pulled.id,
        repoTags: union(existing?.repoTags ?? [], local.tags),
        repoDigests: union(existing?.repoDigests ?? [], local.repoDigests),
        size: String(pulled.size),
        layers: pulled.layers,
        blobs: union(existing?.blobs ?? [], pulled.blobs),
        run: pulled.run,
        os: pulled.os,
        architecture: pulled.architecture,
        pinned: (existing?.pinned ?? false) || local.pinned,
        createdAt: existing?.createdAt ?? nowNs(),
      };
      batch.putImage(record);
      await store.commit(batch);
      this.fsInfoCache = undefined;
      const saved = store.getImage(pulled.id);
      if (!saved)
        throw new NotFoundError('image', pulled.id, { hint: 'it vanished right after it was recorded' });
      return saved;
    });
  }

  /**
   * Removes an image by id, tag or digest. A tag of an image with several tags only untags;
   * an image a container uses cannot go. Idempotent: an unknown image is not an error.
   */
  async remove(spec: string): Promise<void> {
    const image = await this.resolve(spec);
    if (!image) return;
    await this.mutex.run(IMAGES_LOCK, async () => {
      const { store } = this.deps;
      const current = store.getImage(image.id);
      if (!current) return;
      const asTag = this.tagNamedBy(spec, current);
      if (asTag !== undefined && current.repoTags.length > 1) {
        await store.commit(
          new StoreBatch().putImage({ ...current, repoTags: current.repoTags.filter((t) => t !== asTag) }),
        );
        return;
      }
      const users = store
        .listContainers()
        .filter((c) => c.config.imageRef === current.id || c.config.imageVolumes?.includes(current.id));
      const firstUser = users[0];
      if (firstUser) {
        throw new FailedPreconditionError(
          `image ${current.repoTags[0] ?? current.id} is used by ${users.length} container(s) (e.g. "${firstUser.config.id}"), as their image or an image volume: remove them first`,
        );
      }
      await store.commit(new StoreBatch().delImage(current.id));
      this.fsInfoCache = undefined;
    });
    await this.collectLogged();
  }

  private tagNamedBy(spec: string, image: ImageRecord): string | undefined {
    try {
      const ref = parseReference(spec);
      return image.repoTags.find((t) => t === ref.full);
    } catch {
      return undefined;
    }
  }

  // --- garbage collection --------------------------------------------------------------------

  private async collectLogged(): Promise<void> {
    try {
      await this.collect();
    } catch (err) {
      this.deps.log.error({ err }, 'image garbage collection failed; it runs again after the next removal');
    }
  }

  /** Deletes layers and blobs no image record refers to; waits for running pulls to finish. */
  async collect(): Promise<void> {
    const removed = await this.#exclusive(() => this.#collectUnreferenced(), 'after-pulls');
    if (removed === undefined) return;
    if (removed.layers.length + removed.blobs.length > 0) {
      this.deps.log.info(
        { layers: removed.layers.length, blobs: removed.blobs.length },
        'deleted unreferenced layers and blobs',
      );
    }
  }

  /**
   * The orphan reconciler's pass over the image store (docs/gc.md): unreferenced layers and
   * blobs, downloads, unpacks and deletes a crash left unfinished, and old entries of
   * `scratchDir` (archive imports), each reported to `pass`. Skipped while a pull or import runs
   * (the next pass gets it); temp entries must also be old by the pass's rule.
   */
  async collectOrphans(pass: OrphanPass, scratchDir?: string): Promise<void> {
    await this.#exclusive(async () => {
      const { layers, blobs } = await this.#collectUnreferenced();
      for (const diffId of layers) pass.removed('layer', diffId);
      for (const digest of blobs) pass.removed('blob', digest);
      const temps: { path: string; mtimeMs: number; remove: () => Promise<void> }[] = [
        ...(await this.deps.content.temps()).map((t) => ({
          ...t,
          remove: () => this.deps.content.removeTemp(t.path),
        })),
        ...(await this.deps.layers.temps()).map((t) => ({
          ...t,
          remove: () => this.deps.layers.removeTemp(t.path),
        })),
      ];
      if (scratchDir !== undefined) {
        for (const e of await agedEntries(scratchDir)) {
          temps.push({
            path: e.path,
            mtimeMs: e.mtimeMs,
            remove: () => removeUnmountedTree(e.path),
          });
        }
      }
      for (const t of temps) if (pass.isOld(t.mtimeMs)) await reap(pass, 'tmp', t.path, t.remove);
    }, 'next-pass');
  }

  /**
   * Runs `fn` as the one collection, under the images lock, unless a pull, import or another
   * collection is under way: then it returns undefined, and either notes that a collection is
   * wanted once they are done (`after-pulls`) or leaves it to the reconciler's next pass.
   */
  async #exclusive<T>(fn: () => Promise<T>, retry: 'after-pulls' | 'next-pass'): Promise<T | undefined> {
    if (this.activePulls > 0 || this.collecting !== undefined) {
      if (retry === 'after-pulls') this.collectPending = true;
      return undefined;
    }
    this.collectPending = false;
    // Set in the same tick as the check above: a pull starting from here on waits for it.
    const run = this.mutex.run(IMAGES_LOCK, fn);
    this.collecting = run.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await run;
    } finally {
      this.collecting = undefined;
      // A removal or a pull may have asked for a collection while this one ran.
      if (this.#collectWanted()) void this.collectLogged();
    }
  }

  #collectWanted(): boolean {
    return this.collectPending && this.activePulls === 0;
  }

  async #collectUnreferenced(): Promise<{ layers: string[]; blobs: string[] }> {
    const images = this.deps.store.listImages();
    const liveLayers = new Set(images.flatMap((i) => i.layers.map((l) => l.diffId)));
    const liveBlobs = new Set(images.flatMap((i) => i.blobs));
    const removed = { layers: [] as string[], blobs: [] as string[] };
    for (const diffId of await this.deps.layers.list()) {
      if (liveLayers.has(diffId)) continue;
      await this.deps.layers.delete(diffId);
      removed.layers.push(diffId);
    }
    for (const digest of await this.deps.content.list()) {
      if (liveBlobs.has(digest)) continue;
      await this.deps.content.delete(digest);
      removed.blobs.push(digest);
    }
    if (removed.layers.length + removed.blobs.length > 0) this.fsInfoCache = undefined;
    return removed;
  }

  // --- filesystem usage ----------------------------------------------------------------------

  async fsInfo(): Promise<FsUsage> {
    const cached = this.fsInfoCache;
    if (cached && performance.now() - cached.at < FS_INFO_TTL_MS) return cached.value;
    const usage = await this.deps.layers.usage();
    const value: FsUsage = {
      mountpoint: this.deps.layers.root,
      usedBytes: usage.bytes,
      inodesUsed: usage.inodes,
      timestampNs: nowNs(),
    };
    this.fsInfoCache = { at: performance.now(), value };
    return value;
  }

  /** For /debug/state. */
  debugState(): Record<string, unknown> {
    return {
      images: this.deps.store.listImages().map((i) => ({ id: i.id, tags: i.repoTags, pinned: i.pinned })),
      activePulls: this.activePulls,
    };
  }
}
