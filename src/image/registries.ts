/**
 * Where to pull an image from: containers-registries.conf(5), version 2 (TOML).
 *
 * Supported: `unqualified-search-registries`; `[[registry]]` tables with `prefix` (host[:port],
 * host/ns…, host/ns…/repo, optionally :tag or @digest, or `*.host`), `location`, `insecure`, `blocked`,
 * `mirror-by-digest-only` and `[[registry.mirror]]` tables with `location`, `insecure`,
 * `pull-from-mirror` (all | digest-only | tag-only). Accepted and ignored: `short-name-mode` (crisp
 * never prompts: every search registry is tried, in order), `[aliases]`, `credential-helpers`,
 * `additional-layer-store-auth-helper`. Not read: registries.conf.d drop-ins. Version 1 syntax
 * (`[registries.search]`, …) is refused. Unknown keys are errors (a typo would otherwise silently
 * drop a mirror or a block).
 *
 * Matching: a prefix matches a reference (written `name:tag` or `name@digest`, host compared without
 * regard to case) when it equals it or is followed by "/" — or, once the prefix has a path, by ":"
 * or "@". So "example.com" does not match "example.com:5000/x". `*.example.com` matches any
 * subdomain of example.com, on any port. The longest prefix wins; on a tie an exact prefix beats a
 * wildcard. Rewriting replaces the prefix's name part by `location` (or a mirror's location); the
 * tag or digest is always the reference's own.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseToml, TomlError } from 'smol-toml';
import { FailedPreconditionError, PermissionDeniedError } from '../errors.js';
import {
  DEFAULT_REGISTRY,
  isDigest,
  isValidRegistryHost,
  isValidRepository,
  isValidTag,
  referenceFrom,
} from './reference.js';
import type { ImageReference, PullSource } from './types.js';
import { errnoCode } from '../util/errno.js';

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';

/** The registries policy of the node: how short names resolve and where each image is fetched from. */
export interface RegistriesPolicy {
  /** The file the policy was read from; undefined for the built-in default (no file). */
  readonly file: string | undefined;
  /**
   * Fully qualified references to try for `ref`, in order: one per unqualified-search registry for a
   * short name (docker.io when none are configured), or [ref] for a qualified one. Candidates keep
   * shortName = true.
   */
  candidates(ref: ImageReference): ImageReference[];
  /**
   * Where to fetch a qualified `ref`, in order: the matching mirrors that apply (pull-from-mirror,
   * mirror-by-digest-only), then the primary location. PermissionDeniedError if `ref` is blocked.
   */
  sources(ref: ImageReference): PullSource[];
}

/** The API host serving Docker Hub, whose reference name is docker.io. */
export const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';

/** The policy without a file: short names resolve on docker.io, https only, no mirrors, nothing blocked. */
export function defaultRegistriesPolicy(): RegistriesPolicy {
  return new RegistriesConf(undefined, [DEFAULT_REGISTRY], []);
}

/**
 * Reads registries.conf at `path`. A missing file gives the default policy (check `policy.file`
 * to log it); an unreadable or invalid one throws FailedPreconditionError naming the file and key.
 */
export async function loadRegistriesPolicy(path: string): Promise<RegistriesPolicy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err: unknown) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return defaultRegistriesPolicy();
    const reason = code === 'EISDIR' ? 'it is a directory' : err instanceof Error ? err.message : String(err);
    throw new FailedPreconditionError(`cannot read registries configuration ${path}: ${reason}`, {
      cause: err,
      details: { file: path },
    });
  }
  return parseRegistriesConf(text, path);
}

/** Parses the text of a registries.conf; `file` names it in errors. */
export function parseRegistriesConf(text: string, file: string): RegistriesPolicy {
  const doc = parseTomlText(text, file);
  const check = new Checker(file);
  for (const key of Object.keys(doc)) {
    if (key === 'registries') {
      throw check.error(
        key,
        'version 1 syntax ([registries.search], [registries.insecure], [registries.block]) is not ' +
          'supported; write version 2: unqualified-search-registries = [...] and [[registry]] tables ' +
          'with location, insecure and blocked',
      );
    }
    if (!TOP_LEVEL_KEYS.has(key)) throw check.unknownKey(key, TOP_LEVEL_KEYS);
  }

  const search = check.stringArray(doc['unqualified-search-registries'], 'unqualified-search-registries');
  const searchRegistries = search.map((entry, i) => {
    const key = `unqualified-search-registries[${i}]`;
    const host = check.stripLocation(entry, key);
    if (!isValidRegistryHost(host)) {
      throw check.error(key, `${JSON.stringify(entry)} is not a registry host[:port]`);
    }
    return normaliseHost(host);
  });

  // Accepted for compatibility, not used: crisp has no terminal to prompt on and no helpers to run.
  const mode = check.optionalString(doc['short-name-mode'], 'short-name-mode');
  if (mode !== undefined && !SHORT_NAME_MODES.includes(mode)) {
    throw check.error(
      'short-name-mode',
      `must be one of ${SHORT_NAME_MODES.filter((m) => m !== '').join(', ')} (got ${JSON.stringify(mode)})`,
    );
  }
  check.optionalTable(doc.aliases, 'aliases');
  check.stringArray(doc['credential-helpers'], 'credential-helpers');
  check.optionalString(doc['additional-layer-store-auth-helper'], 'additional-layer-store-auth-helper');

  const entries = check
    .tableArray(doc.registry, 'registry')
    .map((raw, i) => readEntry(raw, `registry[${i}]`, check));
  const seen = new Map<string, string>();
  for (const entry of entries) {
    const other = seen.get(entry.prefix);
    if (other !== undefined) {
      throw check.error(
        `${entry.key}.prefix`,
        `prefix ${JSON.stringify(entry.prefix)} is already used by ${other}`,
      );
    }
    seen.set(entry.prefix, entry.key);
  }
  return new RegistriesConf(file, searchRegistries, entries);
}

// ---------------------------------------------------------------------------------------------------
// The policy

/** A registry host and an optional repository path (no tag or digest): a location or mirror location. */
interface Place {
  host: string;
  path: string;
}

interface Mirror {
  location: Place;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

interface Entry {
  /** "registry[2]", for messages. */
  key: string;
  /** The prefix as matched: host lower-cased, index.docker.io → docker.io, no trailing "/". */
  prefix: string;
  /** ".example.com" for a `*.example.com` prefix. */
  wildcardSuffix: string | undefined;
  /** Length of the name part of `prefix` (without :tag or @digest); the rest of a name is kept. */
  nameLength: number;
  /** Undefined: no rewrite (a wildcard prefix without location). */
  location: Place | undefined;
  insecure: boolean;
  blocked: boolean;
  mirrorByDigestOnly: boolean;
  mirrors: Mirror[];
}

class RegistriesConf implements RegistriesPolicy {
  constructor(
    readonly file: string | undefined,
    private readonly searchRegistries: readonly string[],
    private readonly entries: readonly Entry[],
  ) {}

  candidates(ref: ImageReference): ImageReference[] {
    if (!ref.shortName || this.searchRegistries.length === 0) return [ref];
    // A short name was put on docker.io with library/ added; other registries get the bare name.
    const bare = /^library\/[^/]+$/.test(ref.repository)
      ? ref.repository.slice('library/'.length)
      : ref.repository;
    const out: ImageReference[] = [];
    const seen = new Set<string>();
    for (const registry of this.searchRegistries) {
      const candidate = {
        ...referenceFrom({ registry, repository: bare, tag: ref.tag, digest: ref.digest }),
        shortName: true,
      };
      if (seen.has(candidate.full)) continue;
      seen.add(candidate.full);
      out.push(candidate);
    }
    return out;
  }

  sources(ref: ImageReference): PullSource[] {
    const { name, text, hostname } = matchForm(ref);
    const entry = this.match(text, hostname);
    if (entry === undefined) {
      return [
        { endpoint: apiEndpoint(ref.registry), insecure: false, repository: ref.repository, mirror: false },
      ];
    }
    if (entry.blocked) {
      throw new PermissionDeniedError(
        `image ${JSON.stringify(ref.full)} is blocked by ${this.file ?? 'registries.conf'} ` +
          `(${entry.key}, prefix ${JSON.stringify(entry.prefix)})`,
        { details: { image: ref.full, file: this.file, prefix: entry.prefix } },
      );
    }
    // What follows the part of the name the prefix covers: "" or "/rest/of/path".
    const rest = entry.wildcardSuffix === undefined ? name.slice(entry.nameLength) : `/${ref.repository}`;
    const digested = ref.digest !== undefined;
    const mirrors = entry.mirrorByDigestOnly
      ? digested
        ? entry.mirrors
        : []
      : entry.mirrors.filter(
          (m) => m.pullFromMirror === 'all' || (m.pullFromMirror === 'digest-only') === digested,
        );
    const out = mirrors.map((m) => this.source(ref, entry, m.location, rest, m.insecure, true));
    // A wildcard prefix without location keeps the reference's own host and path.
    const primary = entry.location ?? { host: ref.registry, path: '' };
    out.push(this.source(ref, entry, primary, rest, entry.insecure, false));
    return out;
  }

  private source(
    ref: ImageReference,
    entry: Entry,
    place: Place,
    rest: string,
    insecure: boolean,
    mirror: boolean,
  ): PullSource {
    const tail = rest.startsWith('/') ? rest.slice(1) : rest;
    let repository = [place.path, tail].filter((p) => p !== '').join('/');
    if (repository === '') {
      throw new FailedPreconditionError(
        `registries configuration ${this.file ?? ''}: ${entry.key} rewrites image ` +
          `${JSON.stringify(ref.full)} to ${JSON.stringify(place.host)}, which names no repository; ` +
          `give the location a repository path`,
        { details: { image: ref.full, file: this.file, prefix: entry.prefix } },
      );
    }
    if (normaliseHost(place.host) === DEFAULT_REGISTRY && !repository.includes('/')) {
      repository = `library/${repository}`;
    }
    return { endpoint: apiEndpoint(place.host), insecure, repository, mirror };
  }

  /** The entry with the longest matching prefix; an exact prefix beats a wildcard of equal length. */
  private match(text: string, hostname: string): Entry | undefined {
    let best: Entry | undefined;
    for (const entry of this.entries) {
      if (!matches(entry, text, hostname)) continue;
      if (
        best === undefined ||
        entry.prefix.length > best.prefix.length ||
        (entry.prefix.length === best.prefix.length &&
          best.wildcardSuffix !== undefined &&
          entry.wildcardSuffix === undefined)
      ) {
        best = entry;
      }
    }
    return best;
  }
}

/**
 * The reference as prefixes see it: `name` with its host normalised, `text` = name:tag or
 * name@digest, and the host name without port (for wildcards).
 */
function matchForm(ref: ImageReference): { name: string; text: string; hostname: string } {
  const host = normaliseHost(ref.registry);
  const name = `${host}/${ref.repository}`;
  const text = ref.digest !== undefined ? `${name}@${ref.digest}` : `${name}:${ref.tag ?? ''}`;
  return { name, text, hostname: host.replace(/:[0-9]+$/, '') };
}

function matches(entry: Entry, text: string, hostname: string): boolean {
  if (entry.wildcardSuffix !== undefined) {
    return hostname.length > entry.wildcardSuffix.length && hostname.endsWith(entry.wildcardSuffix);
  }
  const { prefix } = entry;
  if (text === prefix) return true;
  if (!text.startsWith(prefix)) return false;
  const next = text[prefix.length];
  return next === '/' || (prefix.includes('/') && (next === ':' || next === '@'));
}

function apiEndpoint(host: string): string {
  return normaliseHost(host) === DEFAULT_REGISTRY ? DOCKER_HUB_ENDPOINT : host;
}

/** Lower-cases a host and maps index.docker.io to docker.io. */
function normaliseHost(host: string): string {
  const lower = host.toLowerCase();
  return lower === 'index.docker.io' ? DEFAULT_REGISTRY : lower;
}

// ---------------------------------------------------------------------------------------------------
// Reading the TOML

const TOP_LEVEL_KEYS = new Set([
  'unqualified-search-registries',
  'registry',
  'short-name-mode',
  'aliases',
  'credential-helpers',
  'additional-layer-store-auth-helper',
]);
const REGISTRY_KEYS = new Set([
  'prefix',
  'location',
  'insecure',
  'blocked',
  'mirror-by-digest-only',
  'mirror',
]);
const MIRROR_KEYS = new Set(['location', 'insecure', 'pull-from-mirror']);
const SHORT_NAME_MODES: readonly string[] = ['enforcing', 'permissive', 'disabled', ''];
const PULL_FROM_MIRROR: readonly PullFromMirror[] = ['all', 'digest-only', 'tag-only'];

function parseTomlText(text: string, file: string): Record<string, unknown> {
  try {
    return parseToml(text.startsWith('\uFEFF') ? text.slice(1) : text);
  } catch (err: unknown) {
    if (!(err instanceof TomlError)) throw err;
    const reason = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
    throw new FailedPreconditionError(
      `invalid registries configuration ${file}:${err.line}:${err.column}: TOML syntax error: ${reason}`,
      { cause: err, details: { file } },
    );
  }
}

function readEntry(raw: Record<string, unknown>, key: string, check: Checker): Entry {
  for (const name of Object.keys(raw)) {
    if (name === 'pull-from-mirror') {
      throw check.error(`${key}.${name}`, 'is allowed only in a [[registry.mirror]] table');
    }
    if (!REGISTRY_KEYS.has(name)) throw check.unknownKey(`${key}.${name}`, REGISTRY_KEYS);
  }
  const locationText = check.optionalString(raw.location, `${key}.location`);
  const prefixText = check.optionalString(raw.prefix, `${key}.prefix`);
  const location =
    locationText === undefined || locationText === ''
      ? undefined
      : readPlace(locationText, `${key}.location`, check);
  const insecure = check.optionalBoolean(raw.insecure, `${key}.insecure`);
  const blocked = check.optionalBoolean(raw.blocked, `${key}.blocked`);
  const mirrorByDigestOnly = check.optionalBoolean(
    raw['mirror-by-digest-only'],
    `${key}.mirror-by-digest-only`,
  );

  let prefix: string;
  let wildcardSuffix: string | undefined;
  let nameLength: number;
  if (prefixText === undefined || prefixText === '') {
    if (location === undefined) throw check.error(key, 'set location (and optionally prefix)');
    prefix = joinPlace({ host: normaliseHost(location.host), path: location.path });
    nameLength = prefix.length;
  } else if (prefixText.startsWith('*.')) {
    const suffix = prefixText.slice(1);
    if (!isValidRegistryHost(prefixText.slice(2)) || /[:/@]/.test(suffix)) {
      throw check.error(
        `${key}.prefix`,
        `${JSON.stringify(prefixText)} is not a valid wildcard prefix: write *.example.com (no port, path, tag or digest)`,
      );
    }
    wildcardSuffix = suffix.toLowerCase();
    prefix = `*${wildcardSuffix}`;
    nameLength = prefix.length;
  } else {
    const parsed = readPrefix(prefixText, `${key}.prefix`, check);
    prefix = parsed.prefix;
    nameLength = parsed.nameLength;
    if (location === undefined) {
      throw check.error(`${key}.location`, 'is required unless prefix is a wildcard (*.example.com)');
    }
  }

  const mirrorTables = check.tableArray(raw.mirror, `${key}.mirror`);
  const mirrors = mirrorTables.map((m, j): Mirror => {
    const mkey = `${key}.mirror[${j}]`;
    for (const name of Object.keys(m)) {
      if (!MIRROR_KEYS.has(name)) throw check.unknownKey(`${mkey}.${name}`, MIRROR_KEYS);
    }
    const text = check.optionalString(m.location, `${mkey}.location`);
    if (text === undefined || text === '') throw check.error(`${mkey}.location`, 'is required');
    const pull = check.optionalString(m['pull-from-mirror'], `${mkey}.pull-from-mirror`) ?? '';
    if (pull !== '' && !isPullFromMirror(pull)) {
      throw check.error(
        `${mkey}.pull-from-mirror`,
        `must be one of ${PULL_FROM_MIRROR.join(', ')} (got ${JSON.stringify(pull)})`,
      );
    }
    if (pull !== '' && mirrorByDigestOnly) {
      throw check.error(
        `${mkey}.pull-from-mirror`,
        `cannot be combined with mirror-by-digest-only = true on ${key}; use one or the other`,
      );
    }
    return {
      location: readPlace(text, `${mkey}.location`, check),
      insecure: check.optionalBoolean(m.insecure, `${mkey}.insecure`),
      pullFromMirror: isPullFromMirror(pull) ? pull : 'all',
    };
  });

  return {
    key,
    prefix,
    wildcardSuffix,
    nameLength,
    location,
    insecure,
    blocked,
    mirrorByDigestOnly,
    mirrors,
  };
}

function isPullFromMirror(s: string): s is PullFromMirror {
  return (PULL_FROM_MIRROR as readonly string[]).includes(s);
}

/** host[:port][/path]: a location has no tag or digest. */
function readPlace(text: string, key: string, check: Checker): Place {
  const trimmed = check.stripLocation(text, key);
  const slash = trimmed.indexOf('/');
  const host = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const path = slash === -1 ? '' : trimmed.slice(slash + 1);
  if (!isValidRegistryHost(host)) {
    throw check.error(key, `${JSON.stringify(text)}: ${JSON.stringify(host)} is not a valid host[:port]`);
  }
  if (path !== '' && !isValidRepository(path)) {
    throw check.error(
      key,
      `${JSON.stringify(text)}: ${JSON.stringify(path)} is not a valid repository path (lowercase ` +
        `components separated by "/"; a location has no tag or digest)`,
    );
  }
  return { host, path };
}

/** host[:port][/path][:tag|@digest] → the text matched against references and its name's length. */
function readPrefix(text: string, key: string, check: Checker): { prefix: string; nameLength: number } {
  const trimmed = check.stripLocation(text, key);
  const at = trimmed.indexOf('@');
  const digest = at === -1 ? undefined : trimmed.slice(at + 1);
  let name = at === -1 ? trimmed : trimmed.slice(0, at);
  let tag: string | undefined;
  const slash = name.indexOf('/');
  const colon = name.lastIndexOf(':');
  if (slash !== -1 && colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  if (digest !== undefined && !isDigest(digest)) {
    throw check.error(key, `${JSON.stringify(text)}: ${JSON.stringify(digest)} is not a valid digest`);
  }
  if (tag !== undefined && !isValidTag(tag)) {
    throw check.error(key, `${JSON.stringify(text)}: ${JSON.stringify(tag)} is not a valid tag`);
  }
  if ((tag !== undefined || digest !== undefined) && slash === -1) {
    throw check.error(key, `${JSON.stringify(text)}: a tag or digest needs a repository path`);
  }
  const place = readPlace(name, key, check);
  const normalName = joinPlace({ host: normaliseHost(place.host), path: place.path });
  const suffix = digest !== undefined ? `@${digest}` : tag !== undefined ? `:${tag}` : '';
  return { prefix: `${normalName}${suffix}`, nameLength: normalName.length };
}

function joinPlace(place: Place): string {
  return place.path === '' ? place.host : `${place.host}/${place.path}`;
}

/** Type checks on TOML values; every failure names the file and the key. */
class Checker {
  constructor(readonly file: string) {}

  error(key: string, problem: string): FailedPreconditionError {
    return new FailedPreconditionError(
      `invalid registries configuration ${this.file}: key "${key}": ${problem}`,
      {
        details: { file: this.file, key },
      },
    );
  }

  unknownKey(key: string, known: ReadonlySet<string>): FailedPreconditionError {
    return this.error(key, `unknown key; valid keys here: ${[...known].join(', ')}`);
  }

  optionalString(value: unknown, key: string): string | undefined {
    if (value === undefined || typeof value === 'string') return value;
    throw this.error(key, `expected a string, got ${describe(value)}`);
  }

  optionalBoolean(value: unknown, key: string): boolean {
    if (value === undefined) return false;
    if (typeof value === 'boolean') return value;
    throw this.error(key, `expected true or false, got ${describe(value)}`);
  }

  optionalTable(value: unknown, key: string): Record<string, unknown> | undefined {
    if (value === undefined) return undefined;
    if (isTable(value)) return value;
    throw this.error(key, `expected a table, got ${describe(value)}`);
  }

  stringArray(value: unknown, key: string): string[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw this.error(key, `expected an array of strings, got ${describe(value)}`);
    return value.map((item: unknown, i) => {
      if (typeof item !== 'string')
        throw this.error(`${key}[${i}]`, `expected a string, got ${describe(item)}`);
      return item;
    });
  }

  tableArray(value: unknown, key: string): Record<string, unknown>[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      throw this.error(
        key,
        `expected an array of tables ([[${key.replace(/\[\d+\]/g, '')}]]), got ${describe(value)}`,
      );
    }
    return value.map((item: unknown, i) => {
      if (!isTable(item)) throw this.error(`${key}[${i}]`, `expected a table, got ${describe(item)}`);
      return item;
    });
  }

  /** Drops trailing "/"; refuses URL schemes and empty values. */
  stripLocation(text: string, key: string): string {
    if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text)) {
      throw this.error(
        key,
        `${JSON.stringify(text)}: URL schemes are not supported; write host[:port][/path]`,
      );
    }
    const trimmed = text.replace(/\/+$/, '');
    if (trimmed === '') throw this.error(key, 'must not be empty');
    return trimmed;
  }
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'a table';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return `${typeof value} ${String(value)}`;
  }
  return typeof value;
}
