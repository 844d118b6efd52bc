/**
 * Manifests, indexes and image configs: parsing (zod-validated), platform selection from an index,
 * and digests. Pure functions over bytes; the registry client fetches, the puller decides.
 *
 * Content problems — broken JSON, schema1, an artifact instead of an image, a layer type crisp
 * cannot unpack — are FailedPreconditionError: the request was fine and the registry answered,
 * but the content (verified against its digest) will not become usable by asking again.
 */
import { createHash } from 'node:crypto';
import { endianness as osEndianness } from 'node:os';
import { z } from 'zod';
import { FailedPreconditionError, NotFoundError } from '../errors.js';
import {
  DOCKER_CONFIG,
  DOCKER_MANIFEST,
  OCI_ARTIFACT_MANIFEST,
  OCI_INDEX,
  OCI_MANIFEST,
  isImageConfigMediaType,
  isImageManifestMediaType,
  isIndexMediaType,
  isSchema1MediaType,
  layerCompression,
  normalizeMediaType,
} from './media-types.js';
import type { ImageRunConfig } from './types.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
  /** OCI 1.1: set on descriptors of artifacts (signatures, SBOMs, ...) inside an index. */
  artifactType?: string;
}

export type ParsedManifest =
  | { kind: 'index'; mediaType: string; manifests: Descriptor[] }
  | { kind: 'image'; mediaType: string; config: Descriptor; layers: Descriptor[] };

export type ParsedIndex = Extract<ParsedManifest, { kind: 'index' }>;
export type ParsedImageManifest = Extract<ParsedManifest, { kind: 'image' }>;

/** What the messages say about the bytes being parsed. Both optional; the digest is computed if absent. */
export interface ManifestContext {
  /** The manifest's digest, e.g. as fetched. */
  digest?: string;
  /** The image it belongs to, e.g. "127.0.0.1:5000/x:1". */
  image?: string;
}

// ---------------------------------------------------------------------------------------------
// Digests

const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha512: 128 };

export type DigestAlgorithm = 'sha256' | 'sha512';

/** Why `digest` is not a valid OCI digest, or undefined when it is. */
export function digestProblem(digest: string): string | undefined {
  if (!DIGEST_RE.test(digest)) return 'not of the form algorithm:encoded';
  const [algorithm = '', encoded = ''] = digest.split(':', 2);
  const length = HEX_LENGTH[algorithm];
  if (length !== undefined && !new RegExp(`^[a-f0-9]{${length}}$`).test(encoded)) {
    return `a ${algorithm} digest needs ${length} lowercase hex digits`;
  }
  return undefined;
}

/** The algorithm of a digest crisp can verify, or undefined (unknown algorithm). */
export function digestAlgorithm(digest: string): DigestAlgorithm | undefined {
  const algorithm = digest.split(':', 1)[0];
  return algorithm === 'sha256' || algorithm === 'sha512' ? algorithm : undefined;
}

/** `sha256:<hex>` (or sha512) of exactly these bytes. */
export function computeDigest(bytes: Buffer, algorithm: DigestAlgorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Schemas

const digestSchema = z.string().superRefine((value, ctx) => {
  const problem = digestProblem(value);
  if (problem) {
    ctx.addIssue({ code: 'custom', message: `invalid digest ${JSON.stringify(value)}: ${problem}` });
  }
});

const platformSchema = z.object({
  os: z.string(),
  architecture: z.string(),
  variant: z.string().optional(),
});

const descriptorSchema = z.object({
  mediaType: z.string().min(1),
  digest: digestSchema,
  size: z.int().min(0),
  platform: platformSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  urls: z.array(z.string()).optional(),
  artifactType: z.string().optional(),
});

const indexSchema = z.object({
  schemaVersion: z.literal(2),
  manifests: z.array(descriptorSchema),
});

const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
});

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.map(String).join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Manifests

/**
 * Parses a manifest or index. The kind comes from `contentType` when it names a known manifest
 * type, else from the JSON `mediaType`, else from the shape (`manifests` → index, `config` →
 * image). Refuses schema1, artifacts, ambiguous documents (an index with layers or an image with
 * manifests, CVE-2021-41190) and layers of a type crisp cannot unpack.
 */
export function parseManifest(
  bytes: Buffer,
  contentType: string,
  context: ManifestContext = {},
): ParsedManifest {
  const what = `manifest ${context.digest ?? computeDigest(bytes)}${context.image ? ` of ${context.image}` : ''}`;
  const refuse = (reason: string, cause?: unknown): FailedPreconditionError =>
    new FailedPreconditionError(`${what} ${reason}`, { cause, details: { contentType } });

  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw refuse(
      `is not valid JSON (${err instanceof Error ? err.message : String(err)}); the registry holds a broken manifest`,
      err,
    );
  }
  if (!isRecord(json)) throw refuse('is not a JSON object; the registry holds a broken manifest');

  const declared = normalizeMediaType(contentType);
  const inner = typeof json['mediaType'] === 'string' ? normalizeMediaType(json['mediaType']) : '';
  if (isSchema1MediaType(declared) || isSchema1MediaType(inner) || json['schemaVersion'] === 1) {
    throw refuse(
      'is a Docker schema1 manifest, which crisp does not support (it is deprecated and containerd 2.1 removed it too); rebuild or re-push the image with a current Docker or buildah to get a schema2/OCI manifest',
    );
  }
  if (declared === OCI_ARTIFACT_MANIFEST || inner === OCI_ARTIFACT_MANIFEST) {
    throw refuse('is an OCI artifact manifest, not a container image; it cannot be run');
  }

  const known = (t: string): boolean => isIndexMediaType(t) || isImageManifestMediaType(t);
  let mediaType: string;
  if (known(declared)) mediaType = declared;
  else if (known(inner)) mediaType = inner;
  else if ('manifests' in json) mediaType = OCI_INDEX;
  else if ('config' in json) {
    const config = json['config'];
    mediaType = isRecord(config) && config['mediaType'] === DOCKER_CONFIG ? DOCKER_MANIFEST : OCI_MANIFEST;
  } else {
    throw refuse(
      `has media type ${JSON.stringify(declared || inner || 'none')}, which is not an image manifest or index crisp knows`,
    );
  }
  const isIndex = isIndexMediaType(mediaType);
  if (known(inner) && isIndexMediaType(inner) !== isIndex) {
    throw refuse(`is ambiguous: the registry calls it ${declared} but its mediaType field says ${inner}`);
  }

  if (isIndex) {
    if ('config' in json || 'layers' in json) {
      throw refuse('is ambiguous: an image index that also has config or layers');
    }
    const parsed = indexSchema.safeParse(json);
    if (!parsed.success) {
      throw refuse(`is not a valid image index (${firstIssue(parsed.error)})`, parsed.error);
    }
    return { kind: 'index', mediaType, manifests: parsed.data.manifests };
  }

  if ('manifests' in json) throw refuse('is ambiguous: an image manifest that also lists manifests');
  const parsed = imageManifestSchema.safeParse(json);
  if (!parsed.success) {
    throw refuse(`is not a valid image manifest (${firstIssue(parsed.error)})`, parsed.error);
  }
  const { config, layers, artifactType } = parsed.data;
  if (!isImageConfigMediaType(config.mediaType)) {
    throw refuse(
      `describes an OCI artifact (config media type ${JSON.stringify(config.mediaType)}${
        artifactType ? `, artifact type ${JSON.stringify(artifactType)}` : ''
      }), not a container image; it cannot be run`,
    );
  }
  layers.forEach((layer, i) => {
    if (layerCompression(layer.mediaType) === undefined) {
      throw refuse(
        `has layer ${i} (${layer.digest}) of media type ${JSON.stringify(layer.mediaType)}, which crisp cannot unpack`,
      );
    }
  });
  return { kind: 'image', mediaType, config, layers };
}

// ---------------------------------------------------------------------------------------------
// Platforms

export interface HostPlatform {
  os: 'linux';
  architecture: string;
  variant?: string;
}

const GO_ARCH: Readonly<Record<string, string>> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips64el: 'mips64le',
};

/**
 * The platform images are selected for: linux plus the Go name of the CPU architecture.
 * `arch` and `armVersion` default to this process's; they are parameters for tests.
 */
export function hostPlatform(
  arch: string = process.arch,
  armVersion: unknown = Reflect.get(process.config.variables, 'arm_version'),
  endianness: 'BE' | 'LE' = osEndianness(),
): HostPlatform {
  if (arch === 'ppc64') return { os: 'linux', architecture: endianness === 'LE' ? 'ppc64le' : 'ppc64' };
  const architecture = GO_ARCH[arch] ?? arch;
  if (architecture === 'arm64') return { os: 'linux', architecture, variant: 'v8' };
  if (architecture === 'arm') {
    const v = typeof armVersion === 'string' || typeof armVersion === 'number' ? String(armVersion) : '';
    return { os: 'linux', architecture, variant: /^[5-8]$/.test(v) ? `v${v}` : 'v7' };
  }
  return { os: 'linux', architecture };
}

/** `linux/arm/v7`, `linux/amd64`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((s) => s !== undefined && s !== '').join('/');
}

const ARCH_ALIASES: Readonly<Record<string, string>> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  aarch64: 'arm64',
  i386: '386',
  armhf: 'arm',
  armel: 'arm',
};

/** Architecture and variant the way containerd compares them: aliases folded, default variants dropped. */
function normalize(p: Platform): { architecture: string; variant: string | undefined } {
  const architecture = ARCH_ALIASES[p.architecture.toLowerCase()] ?? p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  if (variant !== undefined && /^\d+$/.test(variant)) variant = `v${variant}`;
  if ((architecture === 'arm64' && variant === 'v8') || (architecture === 'amd64' && variant === 'v1')) {
    variant = undefined;
  }
  return { architecture, variant };
}

function isAttestation(d: Descriptor): boolean {
  return d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest';
}

/** Lower is better; undefined means "cannot run here". */
function rank(d: Descriptor, want: Platform): number | undefined {
  if (isAttestation(d) || d.artifactType !== undefined) return undefined;
  if (!isIndexMediaType(d.mediaType) && !isImageManifestMediaType(d.mediaType)) return undefined;
  const p = d.platform;
  if (!p) return 100; // no platform stated: a last resort, as containerd treats it
  if (p.os === 'unknown' && p.architecture === 'unknown') return undefined;
  if (p.os !== want.os) return undefined;
  const have = normalize(p);
  const host = normalize(want);
  if (have.architecture !== host.architecture) return undefined;
  if (have.variant === host.variant) return 0;
  if (have.variant === undefined) return 1;
  if (host.variant === undefined) return 2;
  // Older ARM variants run on newer cores (v6 code on a v7 CPU), nearest first.
  const armHave = /^v(\d)$/.exec(have.variant)?.[1];
  const armHost = /^v(\d)$/.exec(host.variant)?.[1];
  if (host.architecture === 'arm' && armHave !== undefined && armHost !== undefined && armHave < armHost) {
    return 10 + Number(armHost) - Number(armHave);
  }
  return undefined;
}

/**
 * The index entry to pull on `platform`: os and architecture must match; an exact variant beats
 * an entry without one, which beats any other variant (older ARM variants are accepted last);
 * attestation and artifact entries are skipped; entries without a platform are a last resort.
 * Ties go to the first entry. None → NotFoundError listing what the index offers.
 */
export function selectPlatform(
  index: ParsedIndex,
  platform: Platform = hostPlatform(),
  image?: string,
): Descriptor {
  let best: { d: Descriptor; r: number } | undefined;
  for (const d of index.manifests) {
    const r = rank(d, platform);
    if (r !== undefined && (best === undefined || r < best.r)) best = { d, r };
  }
  if (best) return best.d;
  const offered = index.manifests
    .filter((d) => !isAttestation(d) && d.artifactType === undefined && d.platform)
    .map((d) => (d.platform ? formatPlatform(d.platform) : ''))
    .filter((p) => p !== 'unknown/unknown');
  const of = image ? ` of ${image}` : '';
  throw new NotFoundError('platform', formatPlatform(platform), {
    hint:
      offered.length === 0
        ? `the image index${of} lists no runnable manifest`
        : `the image index${of} has only ${[...new Set(offered)].join(', ')}; use an image built for ${formatPlatform(platform)}`,
  });
}

// ---------------------------------------------------------------------------------------------
// Image config

/** Docker's strslice: a JSON array of strings, or one string meaning a one-element list. */
const stringList = z.union([z.array(z.string()), z.string().transform((s) => [s])]).nullish();
const keySet = z.record(z.string(), z.unknown()).nullish();

const imageConfigSchema = z.object({
  os: z.string().nullish(),
  architecture: z.string().nullish(),
  variant: z.string().nullish(),
  created: z.string().nullish(),
  config: z
    .object({
      User: z.string().nullish(),
      Env: z.array(z.string()).nullish(),
      Entrypoint: stringList,
      Cmd: stringList,
      WorkingDir: z.string().nullish(),
      StopSignal: z.string().nullish(),
      ExposedPorts: keySet,
      Volumes: keySet,
      Labels: z.record(z.string(), z.unknown()).nullish(),
    })
    .nullish(),
  rootfs: z.object({
    type: z.string(),
    diff_ids: z.array(digestSchema).nullish(),
  }),
  history: z.array(z.object({ empty_layer: z.boolean().nullish() }).nullish()).nullish(),
});

export interface ParsedImageConfig {
  /** rootfs.diff_ids, base layer first. */
  diffIds: string[];
  run: ImageRunConfig;
  /** '' when the config omits it. */
  os: string;
  /** '' when the config omits it. */
  architecture: string;
  variant?: string;
  /** RFC 3339, as written in the config. */
  created?: string;
  /** history[] entries with empty_layer: true (they have no layer). */
  historyEmptyLayers: number;
}

/**
 * Parses an image config blob (OCI or Docker; they share the shape). Absent and null fields become
 * empty values: '' for user, workingDir and stopSignal (the container engine applies its defaults,
 * "/" and SIGTERM, and can tell "unset" from a choice), [] for lists, {} for labels. ExposedPorts
 * and Volumes become their key lists. Only string label values are kept.
 */
export function parseImageConfig(bytes: Buffer): ParsedImageConfig {
  const what = `image config ${computeDigest(bytes)}`;
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new FailedPreconditionError(
      `${what} is not valid JSON (${err instanceof Error ? err.message : String(err)}); the image is broken`,
      { cause: err },
    );
  }
  const parsed = imageConfigSchema.safeParse(json);
  if (!parsed.success) {
    throw new FailedPreconditionError(`${what} is not a valid image config (${firstIssue(parsed.error)})`, {
      cause: parsed.error,
    });
  }
  const { data } = parsed;
  if (data.rootfs.type !== 'layers') {
    throw new FailedPreconditionError(
      `${what} has rootfs.type ${JSON.stringify(data.rootfs.type)}; only "layers" is defined by the image spec`,
    );
  }
  const c = data.config ?? {};
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(c.Labels ?? {})) {
    if (typeof value === 'string') labels[key] = value;
  }
  const result: ParsedImageConfig = {
    diffIds: data.rootfs.diff_ids ?? [],
    run: {
      user: c.User ?? '',
      env: c.Env ?? [],
      entrypoint: c.Entrypoint ?? [],
      cmd: c.Cmd ?? [],
      workingDir: c.WorkingDir ?? '',
      stopSignal: c.StopSignal ?? '',
      volumes: Object.keys(c.Volumes ?? {}),
      exposedPorts: Object.keys(c.ExposedPorts ?? {}),
      labels,
    },
    os: data.os ?? '',
    architecture: data.architecture ?? '',
    historyEmptyLayers: (data.history ?? []).filter((h) => h?.empty_layer === true).length,
  };
  if (data.variant) result.variant = data.variant;
  if (data.created) result.created = data.created;
  return result;
}
