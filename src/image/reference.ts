/**
 * Image references: parsing and normalisation by the docker/distribution grammar as the container
 * ecosystem applies it (containers/image `docker/reference`, which CRI-O uses), plus image ids.
 *
 *   reference  := name [":" tag] ["@" digest]
 *   name       := [domain "/"] path          (≤ 255 characters once normalised)
 *   domain     := host-component ("." host-component)* [":" port]   (upper case allowed)
 *   path       := component ("/" component)*  component := [a-z0-9]+ ((. | _ | __ | -+) [a-z0-9]+)*
 *   tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   digest     := sha256:<64 hex> | sha512:<128 hex>   (lower-case hex)
 *
 * The first path element is a registry only if it contains "." or ":" or is exactly "localhost";
 * otherwise the whole name is a path on docker.io (so "LOCALHOST/x" is an upper-case path, not a
 * registry). Normalisation: index.docker.io → docker.io; a one-element docker.io path gets
 * "library/"; no tag and no digest → ":latest"; a tag and a digest → the digest wins.
 */
import { InvalidArgumentError } from '../errors.js';
import type { ImageReference } from './types.js';

export const DEFAULT_REGISTRY = 'docker.io';
export const DEFAULT_TAG = 'latest';
/** Longest registry/repository name accepted (distribution's NameTotalLengthMax). */
export const NAME_MAX_LENGTH = 255;
/** Shortest hex prefix accepted as an image id prefix (docker's short identifier is 6..64 hex). */
export const MIN_ID_PREFIX_LENGTH = 6;

const LEGACY_DEFAULT_REGISTRY = 'index.docker.io';
const OFFICIAL_NAMESPACE = 'library';

const HOST_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const REGISTRY_HOST = new RegExp(`^${HOST_COMPONENT}(?:\\.${HOST_COMPONENT})*(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST_ALGORITHM = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*$/;
const DIGEST_HEX_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha512: 128 };
const ID_HEX = /^[a-f0-9]{64}$/;
const ID_PREFIX_HEX = new RegExp(`^[a-f0-9]{${MIN_ID_PREFIX_LENGTH},64}$`);
const ID_ALGORITHM = 'sha256:';

/**
 * Parses an image reference as a client wrote it ("busybox", "quay.io/a/b:1", "x@sha256:…") into
 * its normalised, fully qualified form. Throws InvalidArgumentError(`field`, …) naming the input
 * and what is wrong; refuses image ids ("<64 hex>", "sha256:<64 hex>").
 */
export function parseReference(input: string, field = 'image'): ImageReference {
  const fail = (why: string): never => {
    throw new InvalidArgumentError(field, `${JSON.stringify(input)} is not a valid image reference: ${why}`);
  };
  if (input === '') fail('it is empty');
  if (isImageId(input)) fail('it looks like an image id; refer to the image by id, not by name');

  const { name, tag, digest } = splitTagAndDigest(input);
  if (digest !== undefined) {
    const problem = digestProblem(digest);
    if (problem !== undefined) fail(problem);
  }
  if (tag !== undefined) {
    const problem = tagProblem(tag);
    if (problem !== undefined) fail(problem);
  }
  if (name === '') fail('the repository name is empty');

  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  const hasRegistry = slash !== -1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  const registry = hasRegistry ? first : DEFAULT_REGISTRY;
  const path = hasRegistry ? name.slice(slash + 1) : name;

  if (hasRegistry && !REGISTRY_HOST.test(registry)) {
    fail(`registry host ${JSON.stringify(registry)} is not a valid host[:port]`);
  }
  const problem = repositoryProblem(path);
  if (problem !== undefined) fail(problem);

  const parts = normaliseName(registry, path);
  if (parts.registry.length + 1 + parts.repository.length > NAME_MAX_LENGTH) {
    fail(`the name must not be longer than ${NAME_MAX_LENGTH} characters`);
  }
  return build(parts.registry, parts.repository, tag, digest, !hasRegistry);
}

/**
 * Builds a reference from its parts (e.g. to name `name@digest`, or to put a short name on a
 * search registry). The same normalisation as parseReference applies (index.docker.io → docker.io,
 * library/ on docker.io, digest wins over tag, default tag latest); shortName is false.
 */
export function referenceFrom(parts: {
  registry: string;
  repository: string;
  tag?: string | undefined;
  digest?: string | undefined;
}): ImageReference {
  const shown = `${parts.registry}/${parts.repository}`;
  const fail = (why: string): never => {
    throw new InvalidArgumentError('image', `${JSON.stringify(shown)} is not a valid image name: ${why}`);
  };
  if (!REGISTRY_HOST.test(parts.registry)) {
    fail(`registry host ${JSON.stringify(parts.registry)} is not a valid host[:port]`);
  }
  const problem = repositoryProblem(parts.repository);
  if (problem !== undefined) fail(problem);
  if (parts.tag !== undefined) {
    const tagIssue = tagProblem(parts.tag);
    if (tagIssue !== undefined) fail(tagIssue);
  }
  if (parts.digest !== undefined) {
    const digestIssue = digestProblem(parts.digest);
    if (digestIssue !== undefined) fail(digestIssue);
  }
  const { registry, repository } = normaliseName(parts.registry, parts.repository);
  if (registry.length + 1 + repository.length > NAME_MAX_LENGTH) {
    fail(`the name must not be longer than ${NAME_MAX_LENGTH} characters`);
  }
  return build(registry, repository, parts.tag, parts.digest, false);
}

/** The same image name pinned to `digest` (the tag is dropped); shortName is kept. */
export function withDigest(ref: ImageReference, digest: string): ImageReference {
  const problem = digestProblem(digest);
  if (problem !== undefined) {
    throw new InvalidArgumentError('digest', `${JSON.stringify(digest)} for image ${ref.name}: ${problem}`);
  }
  return build(ref.registry, ref.repository, undefined, digest, ref.shortName);
}

/** True for a full image id: 64 lower-case hex digits, bare or as "sha256:<hex>". */
export function isImageId(s: string): boolean {
  return ID_HEX.test(stripIdAlgorithm(s));
}

/** "sha256:<hex>" for an image id in either form; InvalidArgumentError('image', …) otherwise. */
export function normaliseImageId(s: string): string {
  if (!isImageId(s)) {
    throw new InvalidArgumentError(
      'image',
      `${JSON.stringify(s)} is not an image id: expected 64 lower-case hex digits, optionally after "sha256:"`,
    );
  }
  return `${ID_ALGORITHM}${stripIdAlgorithm(s)}`;
}

/**
 * True for something that may abbreviate an image id: 6 to 64 lower-case hex digits, bare or after
 * "sha256:". Such a string may also be a valid name ("deadbeef"); the caller decides the order.
 */
export function isIdPrefix(s: string): boolean {
  return ID_PREFIX_HEX.test(stripIdAlgorithm(s));
}

/** True for a digest crisp can verify: sha256:<64 hex> or sha512:<128 hex>, lower-case hex. */
export function isDigest(s: string): boolean {
  return digestProblem(s) === undefined;
}

/** True for a registry host as the reference grammar allows it: host components and an optional port. */
export function isValidRegistryHost(s: string): boolean {
  return REGISTRY_HOST.test(s);
}

/** True for a repository path: lower-case components separated by "/". */
export function isValidRepository(s: string): boolean {
  return repositoryProblem(s) === undefined;
}

/** True for a tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. */
export function isValidTag(s: string): boolean {
  return tagProblem(s) === undefined;
}

// ---------------------------------------------------------------------------------------------------

/** Splits "name[:tag][@digest]"; a ":" before the last "/" belongs to a registry port. */
function splitTagAndDigest(input: string): {
  name: string;
  tag: string | undefined;
  digest: string | undefined;
} {
  const at = input.indexOf('@');
  const digest = at === -1 ? undefined : input.slice(at + 1);
  const rest = at === -1 ? input : input.slice(0, at);
  const colon = rest.lastIndexOf(':');
  if (colon !== -1 && colon > rest.lastIndexOf('/')) {
    return { name: rest.slice(0, colon), tag: rest.slice(colon + 1), digest };
  }
  return { name: rest, tag: undefined, digest };
}

function normaliseName(registry: string, path: string): { registry: string; repository: string } {
  const host = registry === LEGACY_DEFAULT_REGISTRY ? DEFAULT_REGISTRY : registry;
  const repository =
    host === DEFAULT_REGISTRY && !path.includes('/') ? `${OFFICIAL_NAMESPACE}/${path}` : path;
  return { registry: host, repository };
}

function build(
  registry: string,
  repository: string,
  tag: string | undefined,
  digest: string | undefined,
  shortName: boolean,
): ImageReference {
  const name = `${registry}/${repository}`;
  if (digest !== undefined) {
    return { registry, repository, tag: undefined, digest, name, full: `${name}@${digest}`, shortName };
  }
  const finalTag = tag ?? DEFAULT_TAG;
  return {
    registry,
    repository,
    tag: finalTag,
    digest: undefined,
    name,
    full: `${name}:${finalTag}`,
    shortName,
  };
}

function repositoryProblem(path: string): string | undefined {
  if (path === '') return 'the repository path is empty';
  if (path !== path.toLowerCase()) return 'repository names must be lowercase';
  for (const component of path.split('/')) {
    if (component === '')
      return 'the repository path has an empty component (a leading, trailing or double "/")';
    if (!PATH_COMPONENT.test(component)) {
      return (
        `repository path component ${JSON.stringify(component)} is not valid: use lowercase letters and ` +
        `digits, separated by ".", "_", "__" or "-"`
      );
    }
  }
  return undefined;
}

function tagProblem(tag: string): string | undefined {
  if (tag === '') return 'the tag after ":" is empty';
  if (TAG.test(tag)) return undefined;
  if (tag.length > 128) return 'the tag must not be longer than 128 characters';
  return (
    `tag ${JSON.stringify(tag)} is not valid: use letters, digits, "_", "." and "-", ` +
    `not starting with "." or "-"`
  );
}

function digestProblem(digest: string): string | undefined {
  const colon = digest.indexOf(':');
  const algorithm = colon === -1 ? '' : digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  if (colon === -1 || !DIGEST_ALGORITHM.test(algorithm) || hex === '') {
    return `digest ${JSON.stringify(digest)} is not valid: expected <algorithm>:<hex>, e.g. sha256:<64 hex digits>`;
  }
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) {
    return `digest algorithm ${JSON.stringify(algorithm)} is not supported (use sha256 or sha512)`;
  }
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    return `a ${algorithm} digest must have exactly ${length} lower-case hex digits`;
  }
  return undefined;
}

function stripIdAlgorithm(s: string): string {
  return s.startsWith(ID_ALGORITHM) ? s.slice(ID_ALGORITHM.length) : s;
}
