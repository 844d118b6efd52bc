/**
 * The shapes the image modules share: references, where to pull from, credentials. Each module
 * (reference.ts, registries.ts, auth.ts, registry-client.ts, content-store.ts, layer-store.ts,
 * service.ts) implements one part; this file is the contract between them.
 */

/** A parsed, normalised image reference (docker/distribution rules). */
export interface ImageReference {
  /** Registry as named in the reference, e.g. "docker.io", "localhost:5000", "registry.example.test". */
  registry: string;
  /** Repository path inside the registry, e.g. "library/busybox". */
  repository: string;
  /** The tag; undefined when the reference has a digest (a digest wins over a tag). */
  tag: string | undefined;
  /** "sha256:<hex>" when the reference names a digest. */
  digest: string | undefined;
  /** registry/repository, e.g. "docker.io/library/busybox". */
  name: string;
  /** The fully qualified form: name:tag or name@digest. What crisp stores and reports. */
  full: string;
  /** True when the input had no registry part ("busybox", "library/busybox", "foo/bar:1"). */
  shortName: boolean;
}

/** One place to try fetching an image from, in order: mirrors first, then the origin. */
export interface PullSource {
  /** host[:port] to contact; "docker.io" is already mapped to its API host. */
  endpoint: string;
  /** Plain HTTP (or unverified TLS) allowed: only for registries marked insecure. */
  insecure: boolean;
  /** Repository path at that endpoint (a mirror or a location may rewrite it). */
  repository: string;
  /** True for a [[registry.mirror]] entry. */
  mirror: boolean;
}

/** Credentials for one registry, from the CRI AuthConfig or the node's auth file. */
export type Credentials =
  | { kind: 'anonymous' }
  | { kind: 'basic'; username: string; password: string }
  /** An OAuth2 refresh token (CRI identity_token). */
  | { kind: 'identity-token'; token: string }
  /** A bearer token sent as is (CRI registry_token). */
  | { kind: 'registry-token'; token: string };

/** The CRI AuthConfig, as a domain type (the CRI layer converts the proto into this). */
export interface AuthConfigInput {
  username: string;
  password: string;
  auth: string;
  serverAddress: string;
  identityToken: string;
  registryToken: string;
}

/** What an image's config says about running it (image config `config` section). */
export interface ImageRunConfig {
  readonly user: string;
  readonly env: readonly string[];
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly workingDir: string;
  readonly stopSignal: string;
  readonly volumes: readonly string[];
  readonly exposedPorts: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
}
