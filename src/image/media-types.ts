/**
 * The media types of OCI image-spec 1.1 and Docker image manifest v2 that crisp recognises, the
 * Accept header it sends for manifests, and small predicates over them. Everything that needs to
 * know "is this an index / a runnable image / a layer we can unpack" asks here, so the lists live
 * in one place.
 */

// Indexes (multi-platform).
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

// Image manifests.
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** Docker schema1 (legacy, unsupported): plain and signed (JWS). */
export const DOCKER_SCHEMA1_MANIFEST = 'application/vnd.docker.distribution.manifest.v1+json';
export const DOCKER_SCHEMA1_SIGNED_MANIFEST = 'application/vnd.docker.distribution.manifest.v1+prettyjws';

/** The OCI 1.1-rc artifact manifest, withdrawn before 1.1; never a runnable image. */
export const OCI_ARTIFACT_MANIFEST = 'application/vnd.oci.artifact.manifest.v1+json';

// Image configs.
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
/** The OCI 1.1 empty descriptor: the config of an artifact. */
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

// Layers.
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
/** Deprecated by image-spec 1.1 but still valid to read. */
export const OCI_LAYER_NONDISTRIBUTABLE = 'application/vnd.oci.image.layer.nondistributable.v1.tar';
export const OCI_LAYER_NONDISTRIBUTABLE_GZIP = 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip';
export const OCI_LAYER_NONDISTRIBUTABLE_ZSTD = 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd';
export const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar';
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
/** "Foreign" layers (Windows base layers): fetched from the descriptor's `urls`, not the registry. */
export const DOCKER_FOREIGN_LAYER = 'application/vnd.docker.image.rootfs.foreign.diff.tar';
export const DOCKER_FOREIGN_LAYER_GZIP = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';

/**
 * The Accept header for manifest requests (containers/image's list). The schema1 types are in it
 * on purpose: a registry that only holds a schema1 manifest then serves it, and crisp answers
 * "schema1 is not supported" instead of a confusing 404 or 406.
 */
export const MANIFEST_ACCEPT = [
  OCI_MANIFEST,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_INDEX,
  DOCKER_SCHEMA1_SIGNED_MANIFEST,
  DOCKER_SCHEMA1_MANIFEST,
].join(', ');

export type LayerCompression = 'none' | 'gzip' | 'zstd';

const LAYERS: ReadonlyMap<string, LayerCompression> = new Map<string, LayerCompression>([
  [OCI_LAYER, 'none'],
  [OCI_LAYER_GZIP, 'gzip'],
  [OCI_LAYER_ZSTD, 'zstd'],
  [OCI_LAYER_NONDISTRIBUTABLE, 'none'],
  [OCI_LAYER_NONDISTRIBUTABLE_GZIP, 'gzip'],
  [OCI_LAYER_NONDISTRIBUTABLE_ZSTD, 'zstd'],
  [DOCKER_LAYER, 'none'],
  [DOCKER_LAYER_GZIP, 'gzip'],
  [DOCKER_FOREIGN_LAYER, 'none'],
  [DOCKER_FOREIGN_LAYER_GZIP, 'gzip'],
]);

/** `Content-Type` without parameters, trimmed and lowercased: `"A/B; charset=utf-8"` → `"a/b"`. */
export function normalizeMediaType(contentType: string | null | undefined): string {
  return (contentType ?? '').split(';', 1)[0]?.trim().toLowerCase() ?? '';
}

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === OCI_INDEX || mediaType === DOCKER_MANIFEST_LIST;
}

export function isImageManifestMediaType(mediaType: string): boolean {
  return mediaType === OCI_MANIFEST || mediaType === DOCKER_MANIFEST;
}

export function isSchema1MediaType(mediaType: string): boolean {
  return mediaType === DOCKER_SCHEMA1_MANIFEST || mediaType === DOCKER_SCHEMA1_SIGNED_MANIFEST;
}

/** The config of a runnable image (anything else marks an artifact). */
export function isImageConfigMediaType(mediaType: string): boolean {
  return mediaType === OCI_CONFIG || mediaType === DOCKER_CONFIG;
}

/** How a layer blob is compressed, or undefined when the media type is not a layer crisp can unpack. */
export function layerCompression(mediaType: string): LayerCompression | undefined {
  return LAYERS.get(mediaType);
}

/** Nondistributable / foreign layers: their blobs may live at the descriptor's `urls` only. */
export function isNondistributableLayer(mediaType: string): boolean {
  return mediaType.includes('.nondistributable.') || mediaType.includes('.foreign.');
}
