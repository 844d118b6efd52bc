/**
 * Builds OCI images from local bytes, without a registry: the config and manifest JSON for a
 * list of layers, stored the way a pull stores them. Used for the built-in pause image and
 * by `crisp image import`.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ContentStore } from './content-store.js';
import type { LayerSource } from './layer-cache.js';
import { parseImageConfig } from './manifest.js';
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST } from './media-types.js';
import type { PulledImage } from './puller.js';

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export interface LocalLayer {
  /** Digest and media type of the blob as stored (compressed or not). */
  digest: string;
  mediaType: string;
  size: number;
  /** Opens the blob's bytes. */
  open: () => Promise<Readable>;
}

/**
 * Stores `configBytes` and `manifestBytes` (plus any index bytes) in the content store and
 * brings every layer into the layer store; returns what the service needs to record the image.
 */
export async function storeLocalImage(
  content: ContentStore,
  layers: LayerSource,
  parts: {
    manifestBytes: Buffer;
    configBytes: Buffer;
    extraBlobs?: Buffer[];
    layers: LocalLayer[];
    topDigest?: string;
  },
): Promise<PulledImage> {
  const config = parseImageConfig(parts.configBytes);
  if (config.diffIds.length !== parts.layers.length) {
    throw new Error(
      `the image config lists ${config.diffIds.length} layers but ${parts.layers.length} were given`,
    );
  }
  const manifestDigest = sha256(parts.manifestBytes);
  const configDigest = sha256(parts.configBytes);
  await content.putBytes(manifestDigest, parts.manifestBytes);
  await content.putBytes(configDigest, parts.configBytes);
  const blobs = [manifestDigest, configDigest];
  for (const extra of parts.extraBlobs ?? []) {
    const d = sha256(extra);
    await content.putBytes(d, extra);
    blobs.push(d);
  }
  const pulledLayers = [];
  for (const [i, layer] of parts.layers.entries()) {
    const diffId = config.diffIds[i] as string;
    await layers.ensure(
      { digest: layer.digest, diffId, mediaType: layer.mediaType, size: layer.size },
      layer.open,
      () => undefined,
    );
    pulledLayers.push({ digest: layer.digest, diffId, mediaType: layer.mediaType, size: layer.size });
  }
  return {
    id: configDigest,
    topDigest: parts.topDigest ?? manifestDigest,
    blobs,
    layers: pulledLayers,
    run: config.run,
    os: config.os,
    architecture: config.architecture,
    size: parts.configBytes.length + pulledLayers.reduce((s, l) => s + l.size, 0),
    endpoint: 'local',
  };
}

/** The bytes of an OCI image manifest for a config and its layers (base layer first). */
export function imageManifest(
  configBytes: Buffer,
  layers: readonly { mediaType: string; digest: string; size: number }[],
): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(configBytes), size: configBytes.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
}

/** A one-layer OCI image manifest and config for an uncompressed layer tar. */
export function singleLayerImage(
  layerTar: Buffer,
  runConfig: {
    Entrypoint: string[];
    Cmd?: string[];
    User?: string;
    Env?: string[];
    Labels?: Record<string, string>;
  },
  architecture: string,
): { manifestBytes: Buffer; configBytes: Buffer; layer: LocalLayer } {
  const diffId = sha256(layerTar);
  const configBytes = Buffer.from(
    JSON.stringify({
      created: '1970-01-01T00:00:00Z',
      architecture,
      os: 'linux',
      config: runConfig,
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: 'crisp' }],
    }),
  );
  const layerMediaType = OCI_LAYER;
  const manifestBytes = imageManifest(configBytes, [
    { mediaType: layerMediaType, digest: diffId, size: layerTar.length },
  ]);
  return {
    manifestBytes,
    configBytes,
    layer: {
      digest: diffId,
      mediaType: layerMediaType,
      size: layerTar.length,
      open: () => Promise.resolve(Readable.from([layerTar])),
    },
  };
}
