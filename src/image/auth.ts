/**
 * Registry credentials: from the CRI AuthConfig of a PullImage call, and from the node's auth file
 * (containers-auth.json(5) / docker config.json: `{"auths": {"<key>": {"auth": "…", "identitytoken": "…"}}}`).
 *
 * Registry hosts are compared without scheme, path or case, and Docker Hub's aliases
 * (index.docker.io, registry-1.docker.io) count as docker.io.
 */
import { readFile } from 'node:fs/promises';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import type { AuthConfigInput, Credentials } from './types.js';
import { errnoCode } from '../util/errno.js';

/** Credentials per registry (and per namespace or repository) from the node's auth file. */
export interface AuthFile {
  /** The file read; '' when none is configured. */
  readonly path: string;
  /** False when no file is configured or the file does not exist (the caller may log it). */
  readonly exists: boolean;
  /**
   * The most specific entry for `registry` (host[:port]) and `repository`: registry/ns/repo, then
   * each shorter namespace, then the registry alone. Undefined when none applies.
   */
  lookup(registry: string, repository: string): Credentials | undefined;
}

const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * The credentials a CRI AuthConfig gives for `registry`, or undefined when it gives none (empty, or
 * its server_address names another registry). Precedence: registry_token (bearer), identity_token
 * (OAuth2 refresh token), username/password, auth (base64 "user:password").
 */
export function credentialsFromAuthConfig(
  a: AuthConfigInput | undefined,
  registry: string,
): Credentials | undefined {
  if (a === undefined) return undefined;
  if (a.serverAddress !== '' && registryHost(a.serverAddress) !== registryHost(registry)) return undefined;
  if (a.registryToken !== '') return { kind: 'registry-token', token: a.registryToken };
  if (a.identityToken !== '') return { kind: 'identity-token', token: a.identityToken };
  if (a.username !== '' || a.password !== '') {
    return { kind: 'basic', username: a.username, password: a.password };
  }
  if (a.auth !== '') {
    const decoded = decodeAuth(a.auth);
    if (typeof decoded === 'string') throw new InvalidArgumentError('auth', decoded);
    return { kind: 'basic', ...decoded };
  }
  return undefined;
}

/**
 * The host a registry address names, for comparing: scheme and path dropped, lower case, Docker
 * Hub's hosts as docker.io. "https://index.docker.io/v1/" → "docker.io", "Quay.io" → "quay.io".
 */
export function registryHost(address: string): string {
  const withoutScheme = address.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  const host = (withoutScheme.split('/')[0] ?? '').toLowerCase();
  return DOCKER_HUB_ALIASES.has(host) ? DOCKER_HUB : host;
}

/** An AuthFile that finds nothing: no file configured (`path` '') or the file is missing. */
export function emptyAuthFile(path = ''): AuthFile {
  return { path, exists: false, lookup: () => undefined };
}

/**
 * Reads the node's auth file. '' → an AuthFile that finds nothing; a missing file → the same
 * (exists = false); unreadable or malformed → FailedPreconditionError naming the file (and entry).
 */
export async function loadAuthFile(path: string): Promise<AuthFile> {
  if (path === '') return emptyAuthFile();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err: unknown) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return emptyAuthFile(path);
    const reason = code === 'EISDIR' ? 'it is a directory' : err instanceof Error ? err.message : String(err);
    throw new FailedPreconditionError(`cannot read auth file ${path}: ${reason}`, {
      cause: err,
      details: { file: path },
    });
  }
  return parseAuthFile(text, path);
}

/** Parses auth file text; `path` names it in errors. */
export function parseAuthFile(text: string, path: string): AuthFile {
  const fail = (problem: string, cause?: unknown): never => {
    throw new FailedPreconditionError(`invalid auth file ${path}: ${problem}`, {
      cause,
      details: { file: path },
    });
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text.startsWith('\uFEFF') ? text.slice(1) : text);
  } catch (err: unknown) {
    fail(`not valid JSON (${err instanceof Error ? err.message : String(err)})`, err);
  }
  if (!isObject(doc)) return fail('expected a JSON object with an "auths" object');
  // Other top-level keys (credHelpers, credsStore, …) belong to tools crisp does not run.
  const auths = doc.auths;
  const byKey = new Map<string, Credentials>();
  if (auths === undefined || auths === null) return new JsonAuthFile(path, byKey);
  if (!isObject(auths)) return fail('"auths" must be an object');

  for (const [rawKey, entry] of Object.entries(auths)) {
    const where = `auths[${JSON.stringify(rawKey)}]`;
    if (!isObject(entry)) return fail(`${where} must be an object`);
    const key = normaliseKey(rawKey);
    if (key === '') return fail(`${where}: the key names no registry`);
    const credentials = entryCredentials(entry, where, fail);
    // An empty entry gives nothing; the first entry for a key (after normalising) wins.
    if (credentials !== undefined && !byKey.has(key)) byKey.set(key, credentials);
  }
  return new JsonAuthFile(path, byKey);
}

class JsonAuthFile implements AuthFile {
  readonly exists = true;

  constructor(
    readonly path: string,
    private readonly byKey: ReadonlyMap<string, Credentials>,
  ) {}

  lookup(registry: string, repository: string): Credentials | undefined {
    const host = registryHost(registry);
    const parts = repository.split('/').filter((p) => p !== '');
    for (let n = parts.length; n > 0; n--) {
      const found = this.byKey.get(`${host}/${parts.slice(0, n).join('/')}`);
      if (found !== undefined) return found;
    }
    return this.byKey.get(host);
  }
}

function entryCredentials(
  entry: Record<string, unknown>,
  where: string,
  fail: (problem: string) => never,
): Credentials | undefined {
  const { auth, identitytoken } = entry;
  if (identitytoken !== undefined && typeof identitytoken !== 'string') {
    return fail(`${where}.identitytoken must be a string`);
  }
  if (auth !== undefined && typeof auth !== 'string') return fail(`${where}.auth must be a string`);
  // Validate auth even when a token takes precedence: a broken entry should be noticed.
  const decoded = auth === undefined || auth === '' ? undefined : decodeAuth(auth);
  if (typeof decoded === 'string') return fail(`${where}.auth: ${decoded}`);
  if (identitytoken !== undefined && identitytoken !== '')
    return { kind: 'identity-token', token: identitytoken };
  return decoded === undefined ? undefined : { kind: 'basic', ...decoded };
}

/**
 * A key as lookups see it: scheme and trailing "/" dropped, host lower-cased, Docker Hub's hosts
 * as docker.io, and a legacy "/v1" or "/v2" API path after a scheme dropped
 * ("https://index.docker.io/v1/" → "docker.io"). "quay.io/ns/repo" stays a repository key.
 */
function normaliseKey(raw: string): string {
  const schemeMatch = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(raw);
  let rest = (schemeMatch === null ? raw : raw.slice(schemeMatch[0].length)).replace(/\/+$/, '');
  const slash = rest.indexOf('/');
  let path = slash === -1 ? '' : rest.slice(slash + 1);
  if (schemeMatch !== null && (path === 'v1' || path === 'v2')) path = '';
  rest = registryHost(slash === -1 ? rest : rest.slice(0, slash));
  return path === '' ? rest : `${rest}/${path}`;
}

/**
 * Decodes base64 "user:password" (split at the first ":", trailing NULs trimmed from the
 * password). Returns a problem string, never echoing the secret, when it cannot.
 */
function decodeAuth(auth: string): { username: string; password: string } | string {
  if (
    !/^[A-Za-z0-9+/]*={0,2}$/.test(auth) ||
    auth.length % 4 === 1 ||
    (auth.includes('=') && auth.length % 4 !== 0)
  ) {
    return 'not valid base64';
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(auth, 'base64'));
  } catch {
    return 'does not decode to UTF-8 text';
  }
  const colon = text.indexOf(':');
  if (colon === -1) return 'does not decode to "username:password" (no ":")';
  return { username: text.slice(0, colon), password: text.slice(colon + 1).replace(/\0+$/, '') };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
