/**
 * One pull of one fully qualified reference: resolve the manifest (mirrors first, then the
 * origin), pick the host platform from an index, fetch and check the config, then bring every
 * layer into the layer store — downloaded, digest-checked, unpacked and diff-id-checked —
 * with a bounded number of layers in flight. It writes blobs and layers but no image record:
 * the service commits the record once everything is on disk.
 */
import { CrispError, FailedPreconditionError, NotFoundError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { ContentStore } from './content-store.js';
import type { LayerSource } from './layer-cache.js';
import { parseImageConfig, parseManifest, selectPlatform, type Descriptor } from './manifest.js';
import type { RegistryClient } from './registry-client.js';
import type { Credentials, ImageReference, ImageRunConfig, PullSource } from './types.js';
import { mapLimit } from '../util/map-limit.js';
import { failpoint } from '../util/failpoint.js';

/** Layers of one image fetched at the same time. */
const LAYER_CONCURRENCY = 3;
/** Indexes may nest; more than this is a loop or abuse. */
const MAX_INDEX_DEPTH = 4;
/** Progress is logged at most this often. */
const PROGRESS_INTERVAL_MS = 1_000;

export interface PullTarget {
  ref: ImageReference;
  sources: PullSource[];
  credentialsFor(source: PullSource): Promise<Credentials>;
}

export interface PulledLayer {
  digest: string;
  diffId: string;
  mediaType: string;
  size: number;
}

export interface PulledImage {
  /** The config digest: the image id. */
  id: string;
  /** Digest of the manifest or index the reference resolved to (for repo digests). */
  topDigest: string;
  /** Config, manifests and indexes kept in the content store. */
  blobs: string[];
  layers: PulledLayer[];
  run: ImageRunConfig;
  os: string;
  architecture: string;
  /** Config plus compressed layer sizes. */
  size: number;
  /** Where it came from, for the log. */
  endpoint: string;
}

export interface PullerDeps {
  client: RegistryClient;
  content: ContentStore;
  layers: LayerSource;
  log: Logger;
  onBytes?: (n: number) => void;
}

export async function pullReference(
  deps: PullerDeps,
  target: PullTarget,
  signal: AbortSignal,
): Promise<PulledImage> {
  const { client, content, log } = deps;
  const { ref } = target;
  const reference = ref.digest ?? ref.tag ?? 'latest';

  // 1. The top-level manifest, from the first source that has it.
  let source: PullSource | undefined;
  let creds: Credentials = { kind: 'anonymous' };
  let top: Awaited<ReturnType<RegistryClient['getManifest']>> | undefined;
  let lastError: unknown;
  for (const candidate of target.sources) {
    const candidateCreds = await target.credentialsFor(candidate);
    try {
      top = await client.getManifest(candidate, reference, candidateCreds, signal);
      source = candidate;
      creds = candidateCreds;
      break;
    } catch (err) {
      lastError = err;
      signal.throwIfAborted();
      if (!candidate.mirror) throw err;
      log.info(
        {
          image: ref.full,
          mirror: candidate.endpoint,
          err: err instanceof Error ? err.message : String(err),
        },
        'mirror failed; trying the next source',
      );
    }
  }
  if (!top || !source) {
    throw lastError instanceof CrispError
      ? lastError
      : new NotFoundError('image', ref.full, { hint: 'no registry source is configured for it' });
  }
  const from = source;
  const blobs = [top.digest];
  await content.putBytes(top.digest, top.bytes);

  // 2. Down through indexes to the host platform's image manifest.
  let manifest = parseManifest(top.bytes, top.mediaType, { digest: top.digest, image: ref.full });
  for (let depth = 0; manifest.kind === 'index'; depth++) {
    if (depth >= MAX_INDEX_DEPTH) {
      throw new FailedPreconditionError(
        `image ${ref.full}: image indexes nest deeper than ${MAX_INDEX_DEPTH} levels`,
      );
    }
    const chosen: Descriptor = selectPlatform(manifest, undefined, ref.full);
    const child = await client.getManifest(from, chosen.digest, creds, signal);
    await content.putBytes(child.digest, child.bytes);
    blobs.push(child.digest);
    manifest = parseManifest(child.bytes, child.mediaType, { digest: child.digest, image: ref.full });
  }

  // 3. The config: small, checked, parsed.
  const configDesc = manifest.config;
  await content.ingest(configDesc.digest, configDesc.size, () =>
    client.getBlob(from, configDesc.digest, creds, signal),
  );
  blobs.push(configDesc.digest);
  const config = parseImageConfig(await content.readBytes(configDesc.digest));
  if (config.diffIds.length !== manifest.layers.length) {
    throw new FailedPreconditionError(
      `image ${ref.full}: the config lists ${config.diffIds.length} layers (rootfs.diff_ids) but the manifest has ${manifest.layers.length}; the image is broken`,
    );
  }

  // 4. Layers, a few at a time, with progress at most once a second.
  const total = manifest.layers.length;
  let done = 0;
  let bytes = 0;
  let lastLog = 0;
  const progress = (force: boolean): void => {
    const now = performance.now();
    if (!force && now - lastLog < PROGRESS_INTERVAL_MS) return;
    lastLog = now;
    log.info({ image: ref.full, layersDone: done, layersTotal: total, bytes }, 'pulling');
  };
  const layers = await mapLimit(manifest.layers, LAYER_CONCURRENCY, async (desc, i) => {
    const diffId = config.diffIds[i] as string;
    await deps.layers.ensure(
      { digest: desc.digest, diffId, mediaType: desc.mediaType, size: desc.size },
      () => client.getBlob(from, desc.digest, creds, signal),
      (n) => {
        bytes += n;
        deps.onBytes?.(n);
        progress(false);
      },
      signal,
    );
    done += 1;
    failpoint('pull-image:after-layer');
    progress(false);
    return { digest: desc.digest, diffId, mediaType: desc.mediaType, size: desc.size };
  });
  progress(true);

  return {
    id: configDesc.digest,
    topDigest: top.digest,
    blobs,
    layers,
    run: config.run,
    os: config.os,
    architecture: config.architecture,
    size: configDesc.size + layers.reduce((sum, l) => sum + l.size, 0),
    endpoint: from.endpoint,
  };
}
