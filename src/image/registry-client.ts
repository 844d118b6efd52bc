/**
 * The registry client: manifests and blobs over the OCI distribution API v2, with the token
 * (Bearer), OAuth2 refresh-token, Basic and registry-token authentication schemes, redirects
 * followed by hand (Authorization never leaves the registry's origin), bounded retries with
 * backoff, and every failure turned into a typed CrispError that names the registry endpoint,
 * the repository or reference, and the HTTP status with the registry's error code.
 *
 * Transport: https, verified. A source marked insecure is tried over https without certificate
 * verification first and then over plain http (what Docker does for insecure registries); the
 * scheme that answered is remembered per endpoint.
 *
 * Timeouts: each HTTP exchange must produce response headers within `requestTimeoutMs` (manifests
 * and tokens: the whole body too). The caller's AbortSignal ends everything, including a blob
 * stream already handed out. The pull-wide deadline is the caller's.
 *
 * Secrets: credentials and tokens go only into Authorization headers and the OAuth form body;
 * never into a message, a log line or a cache key (the token cache keys on a hash of them).
 */
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  CanceledError,
  type CrispError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from '../errors.js';
import type { Logger } from '../log/logger.js';
import { computeDigest, digestAlgorithm, digestProblem } from './manifest.js';
import { MANIFEST_ACCEPT, normalizeMediaType } from './media-types.js';
import type { Credentials, PullSource } from './types.js';
import { type AuthChallenge, parseWwwAuthenticate } from './www-authenticate.js';

export interface RegistryClientOptions {
  log: Logger;
  /** Sent as User-Agent on every request, e.g. "crisp/0.1.0". */
  userAgent: string;
  /** Longest wait for one HTTP exchange's response headers (manifest and token bodies included). Default 30 s. */
  requestTimeoutMs?: number;
  /** Extra attempts after a retryable failure (5xx, 429, connection reset, timeout). Default 3. */
  retries?: number;
  /** First backoff delay; it doubles per attempt, ±20 % jitter, at most 30 s. Default 500 ms. */
  retryBaseMs?: number;
  /** The longest Retry-After crisp waits out; a longer one fails the request at once. Default 30 s. */
  maxRetryAfterMs?: number;
  /** Clock for token expiry, in ms (tests). Default Date.now. */
  now?: () => number;
}

export interface FetchedManifest {
  /** Exactly the bytes the registry sent. */
  bytes: Buffer;
  /** The response Content-Type without parameters; '' when absent. */
  mediaType: string;
  /** sha256 of `bytes` (for a digest reference: that digest, verified). */
  digest: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_RETRIES = 3;
const DEFAULT_RETRY_BASE_MS = 500;
const DEFAULT_MAX_RETRY_AFTER_MS = 30_000;
const MAX_BACKOFF_MS = 30_000;
const MAX_REDIRECTS = 5;
/** distribution refuses manifests over 4 MiB; containerd reads at most about that much. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_TOKEN_BYTES = 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
/** The token spec's default when a token response has no expires_in. */
const DEFAULT_TOKEN_LIFETIME_S = 60;
const OAUTH_CLIENT_ID = 'crisp';
const TOKEN_CACHE_SWEEP_AT = 256;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

const ENDPOINT_RE =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

type Dispatcher = NonNullable<RequestInit['dispatcher']>;

/** One logical operation (a manifest or a blob), for URLs, auth and messages. */
interface Op {
  source: PullSource;
  creds: Credentials;
  /** "manifest 127.0.0.1:5000/x:1", "blob sha256:… of 127.0.0.1:5000/x". */
  what: string;
  path: string;
  accept?: string;
  /** How a 404 reads. */
  notFound: (detail: string) => CrispError;
}

/** What a failed attempt means for the retry loop. */
class Failure extends Error {
  constructor(
    readonly error: CrispError,
    readonly retry: 'full' | 'once' | 'none',
    /** The connection itself failed (an insecure source then tries the next scheme). */
    readonly transport: boolean,
    readonly delayMs?: number,
  ) {
    super(error.message);
  }
}

/** The abort reason of a request whose timer ran out. */
class RequestTimeout extends Error {}

interface Exchange {
  response: Response;
  url: URL;
  /** Clears the request timer; call once the body is read (or handed over). */
  done: () => void;
  /** Aborted when the request timed out. */
  timedOut: AbortSignal;
}

type StoredChallenge = { scheme: 'basic' } | { scheme: 'bearer'; realm: URL; service: string | undefined };

interface Authorization {
  header?: string;
  tokenKey?: string;
  /** The token was fetched for this request (not from the cache): asking again would not help. */
  freshToken?: boolean;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const tokenResponseSchema = z.object({
  token: z.string().nullish(),
  access_token: z.string().nullish(),
  expires_in: z.union([z.number(), z.string()]).nullish(),
});

const errorBodySchema = z.object({
  errors: z.array(z.object({ code: z.unknown().optional(), message: z.unknown().optional() }).loose()).min(1),
});

export class RegistryClient {
  private readonly log: Logger;
  private readonly userAgent: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly now: () => number;
  /** The last challenge each endpoint sent. */
  private readonly challenges = new Map<string, StoredChallenge>();
  /** Scopes a challenge named for endpoint + repository, beyond repository:<repo>:pull. */
  private readonly extraScopes = new Map<string, string[]>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pendingTokens = new Map<string, Promise<CachedToken>>();
  /** For insecure endpoints: the scheme that answered last. */
  private readonly schemes = new Map<string, 'https' | 'http'>();

  constructor(opts: RegistryClientOptions) {
    this.log = opts.log;
    this.userAgent = opts.userAgent;
    this.timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retries = Math.max(0, opts.retries ?? DEFAULT_RETRIES);
    this.retryBaseMs = opts.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
    this.maxRetryAfterMs = opts.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
    this.now = opts.now ?? Date.now;
  }

  /**
   * The manifest or index `reference` (a tag or a digest) of `source.repository`. The digest is
   * the sha256 of the exact bytes; for a digest reference it must equal the reference.
   */
  async getManifest(
    source: PullSource,
    reference: string,
    creds: Credentials,
    signal: AbortSignal,
  ): Promise<FetchedManifest> {
    validateSource(source);
    const isDigest = reference.includes(':');
    const algorithm = isDigest ? digestAlgorithm(reference) : undefined;
    if (isDigest) {
      const problem = digestProblem(reference);
      if (problem) {
        throw new InvalidArgumentError('image', `digest ${JSON.stringify(reference)} is ${problem}`);
      }
      if (!algorithm) {
        throw new InvalidArgumentError(
          'image',
          `digest ${reference}: only sha256 and sha512 digests are supported`,
        );
      }
    } else if (!TAG_RE.test(reference)) {
      throw new InvalidArgumentError('image', `tag ${JSON.stringify(reference)} is not a valid tag`);
    }
    const name = `${source.endpoint}/${source.repository}${isDigest ? '@' : ':'}${reference}`;
    const op: Op = {
      source,
      creds,
      what: `manifest ${name}`,
      path: `/v2/${source.repository}/manifests/${reference}`,
      accept: MANIFEST_ACCEPT,
      notFound: (detail) => new NotFoundError('image', name, { hint: `registry answered ${detail}` }),
    };
    this.checkAborted(op, signal);

    const fetched = await this.withRetries(op, signal, async () => {
      const ex = await this.open(op, signal);
      try {
        const tooLarge = new ResourceExhaustedError(
          `registry ${source.endpoint} sent a ${op.what} larger than ${MAX_MANIFEST_BYTES} bytes; refusing it`,
        );
        const bytes = await readLimited(ex.response, MAX_MANIFEST_BYTES, tooLarge).catch((err: unknown) => {
          if (err === tooLarge) throw tooLarge;
          throw this.failure(err, op, ex.url, signal, ex.timedOut, false);
        });
        return { bytes, headers: ex.response.headers };
      } finally {
        ex.done();
      }
    });

    const mediaType = normalizeMediaType(fetched.headers.get('content-type'));
    const computed = computeDigest(fetched.bytes, algorithm ?? 'sha256');
    if (isDigest && computed !== reference) {
      throw new UnavailableError(
        `registry ${source.endpoint} served ${op.what} whose content has digest ${computed}; refusing it (the registry or a proxy altered it)`,
      );
    }
    const advertised = fetched.headers.get('docker-content-digest');
    if (!isDigest && advertised?.startsWith('sha256:') && advertised !== computed) {
      this.log.warn(
        { image: name, advertised, computed },
        'registry Docker-Content-Digest differs from the manifest bytes; using the computed digest',
      );
    }
    return { bytes: fetched.bytes, mediaType, digest: computed };
  }

  /**
   * A stream of blob `digest`. The caller verifies the digest and size while reading; errors on
   * the stream are CrispErrors too (UnavailableError for a broken connection, CanceledError when
   * `signal` fires). Destroy the stream to stop the download early.
   */
  async getBlob(
    source: PullSource,
    digest: string,
    creds: Credentials,
    signal: AbortSignal,
  ): Promise<Readable> {
    validateSource(source);
    const problem = digestProblem(digest);
    if (problem) throw new InvalidArgumentError('digest', `${JSON.stringify(digest)} is ${problem}`);
    const op: Op = {
      source,
      creds,
      what: `blob ${digest} of ${source.endpoint}/${source.repository}`,
      path: `/v2/${source.repository}/blobs/${digest}`,
      notFound: (detail) =>
        new NotFoundError('blob', digest, {
          hint: `registry ${source.endpoint} has no such blob in ${source.repository} (${detail})`,
        }),
    };
    this.checkAborted(op, signal);
    const ex = await this.withRetries(op, signal, () => this.open(op, signal));
    ex.done();
    return this.toNodeStream(ex, op, signal);
  }

  // -------------------------------------------------------------------------------------------
  // Retries, schemes, auth, redirects

  private async withRetries<T>(op: Op, signal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (!(err instanceof Failure)) throw err;
        const limit =
          err.retry === 'none' ? 0 : err.retry === 'once' ? Math.min(1, this.retries) : this.retries;
        if (n >= limit) throw err.error;
        const delayMs = err.delayMs ?? this.backoff(n);
        this.log.warn(
          { endpoint: op.source.endpoint, what: op.what, attempt: n + 1, delayMs, err: err.error.message },
          'registry request failed; retrying',
        );
        try {
          await sleep(delayMs, undefined, { signal });
        } catch (cause) {
          throw new CanceledError(`fetching ${op.what} was canceled`, { cause });
        }
      }
    }
  }

  private backoff(attempt: number): number {
    const base = this.retryBaseMs * 2 ** attempt;
    return Math.round(Math.min(MAX_BACKOFF_MS, base * (0.8 + 0.4 * Math.random())));
  }

  private checkAborted(op: Op, signal: AbortSignal): void {
    if (signal.aborted) throw new CanceledError(`fetching ${op.what} was canceled`, { cause: signal.reason });
  }

  /** A successful (200) response for `op`, trying https then http for insecure sources. */
  private async open(op: Op, signal: AbortSignal): Promise<Exchange> {
    const { endpoint } = op.source;
    const remembered = this.schemes.get(endpoint);
    const schemes: ('https' | 'http')[] = !op.source.insecure
      ? ['https']
      : remembered === 'http'
        ? ['http', 'https']
        : ['https', 'http'];
    for (const [i, scheme] of schemes.entries()) {
      try {
        const ex = await this.openWith(op, scheme, signal);
        if (op.source.insecure && remembered !== scheme) {
          this.schemes.set(endpoint, scheme);
          this.log.info({ endpoint, scheme }, 'insecure registry answers over this scheme');
        }
        return ex;
      } catch (err) {
        const next = schemes[i + 1];
        if (next === undefined || !(err instanceof Failure) || !err.transport || signal.aborted) throw err;
        this.log.debug(
          { endpoint, scheme, next, err: err.error.message },
          'insecure registry: trying the other scheme',
        );
      }
    }
    /* c8 ignore next */
    throw new UnavailableError(`registry ${endpoint}: no scheme to try`);
  }

  private async openWith(op: Op, scheme: 'https' | 'http', signal: AbortSignal): Promise<Exchange> {
    const base = new URL(`${scheme}://${op.source.endpoint}`);
    const url = new URL(op.path, base);
    let reauthenticated = false;
    for (;;) {
      const auth = await this.authorization(op, signal);
      const ex = await this.fetchFollowing(op, url, auth.header, signal);
      const { response } = ex;
      if (response.status === 200) return ex;
      let challenge: AuthChallenge | undefined;
      if (response.status === 401 && ex.url.origin === base.origin) {
        const header = response.headers.get('www-authenticate') ?? '';
        const challenges = parseWwwAuthenticate(header);
        challenge =
          challenges.find((c) => c.scheme === 'bearer') ??
          challenges.find((c) => c.scheme === 'basic') ??
          challenges[0];
        let retry: boolean;
        try {
          retry =
            !reauthenticated && challenge !== undefined && this.learnChallenge(op, challenge, auth, scheme);
        } catch (err) {
          await discard(ex);
          throw err;
        }
        if (retry) {
          reauthenticated = true;
          await discard(ex);
          continue;
        }
      }
      throw await this.statusFailure(op, ex, base, challenge);
    }
  }

  /** Follows redirects by hand; Authorization goes only to the registry's own origin. */
  private async fetchFollowing(
    op: Op,
    start: URL,
    auth: string | undefined,
    signal: AbortSignal,
  ): Promise<Exchange> {
    let url = start;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent };
      if (op.accept) headers['accept'] = op.accept;
      if (auth !== undefined && url.origin === start.origin) headers['authorization'] = auth;
      let ex: Exchange;
      try {
        ex = await this.exchange(op, url, { method: 'GET', headers }, signal);
      } catch (err) {
        // Only the registry's own connection failing says anything about the scheme.
        if (hop > 0 && err instanceof Failure && err.transport) {
          throw new Failure(err.error, err.retry, false, err.delayMs);
        }
        throw err;
      }
      const { status } = ex.response;
      if (!REDIRECT_STATUSES.has(status)) return ex;
      const location = ex.response.headers.get('location');
      await discard(ex);
      if (!location) {
        throw new Failure(
          new UnavailableError(
            `registry ${op.source.endpoint} answered HTTP ${status} without a Location for ${op.what}`,
          ),
          'full',
          false,
        );
      }
      if (hop >= MAX_REDIRECTS) {
        throw new Failure(
          new UnavailableError(
            `registry ${op.source.endpoint} redirected ${op.what} more than ${MAX_REDIRECTS} times`,
          ),
          'none',
          false,
        );
      }
      let next: URL;
      try {
        next = new URL(location, url);
      } catch (cause) {
        throw new Failure(
          new UnavailableError(`registry ${op.source.endpoint} redirected ${op.what} to an invalid URL`, {
            cause,
          }),
          'none',
          false,
        );
      }
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new FailedPreconditionError(
          `registry ${op.source.endpoint} redirected ${op.what} to a ${next.protocol} URL; only http(s) is followed`,
        );
      }
      if (url.protocol === 'https:' && next.protocol === 'http:' && !op.source.insecure) {
        throw new FailedPreconditionError(
          `registry ${op.source.endpoint} redirected ${op.what} from https to plain http (${next.host}); refusing, as the registry is not marked insecure`,
        );
      }
      this.log.debug({ endpoint: op.source.endpoint, to: safeUrl(next), status }, 'registry redirect');
      url = next;
    }
  }

  /** One HTTP exchange under the request timer. Transport failures become Failures. */
  private async exchange(
    op: Op,
    url: URL,
    init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
    signal: AbortSignal,
  ): Promise<Exchange> {
    const timer = new AbortController();
    const timeout = setTimeout(() => {
      timer.abort(new RequestTimeout(`no answer within ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    const done = (): void => {
      clearTimeout(timeout);
    };
    const started = performance.now();
    try {
      const dispatcher =
        op.source.insecure && url.host === hostOf(op.source.endpoint) ? await unverifiedTls() : undefined;
      const request: RequestInit = {
        method: init.method,
        headers: init.headers,
        body: init.body,
        redirect: 'manual',
        signal: AbortSignal.any([signal, timer.signal]),
      };
      if (dispatcher && url.protocol === 'https:') request.dispatcher = dispatcher;
      const response = await fetch(url, request);
      this.log.debug(
        {
          endpoint: op.source.endpoint,
          method: init.method,
          url: safeUrl(url),
          status: response.status,
          durationMs: Math.round(performance.now() - started),
        },
        'registry request',
      );
      return { response, url, done, timedOut: timer.signal };
    } catch (err) {
      done();
      throw this.failure(err, op, url, signal, timer.signal, true);
    }
  }

  /** A thrown fetch or body error, classified: canceled, timed out, refused, DNS, TLS, reset. */
  private failure(
    err: unknown,
    op: Op,
    url: URL,
    signal: AbortSignal,
    timedOut: AbortSignal,
    transport: boolean,
  ): CanceledError | Failure {
    if (signal.aborted) {
      return new CanceledError(`fetching ${op.what} was canceled`, { cause: signal.reason });
    }
    const who =
      url.host === hostOf(op.source.endpoint)
        ? `registry ${op.source.endpoint}`
        : `${url.host} (for registry ${op.source.endpoint})`;
    if (timedOut.aborted || err instanceof RequestTimeout) {
      return new Failure(
        new DeadlineExceededError(
          `${who} did not answer within ${this.timeoutMs} ms while fetching ${op.what}`,
          {
            cause: err,
          },
        ),
        'full',
        transport,
      );
    }
    const code = errorCode(err) ?? '';
    const detail = code || (err instanceof Error ? err.message : String(err));
    if (/^(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EHOSTDOWN|UND_ERR_CONNECT_TIMEOUT)$/.test(code)) {
      return new Failure(
        new UnavailableError(
          `${who} is not reachable (${detail}) while fetching ${op.what}: check that it is running and that the address in registries.conf is right`,
          { cause: err },
        ),
        'once',
        transport,
      );
    }
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      return new Failure(
        new UnavailableError(
          `host ${url.hostname} of ${who} could not be resolved (${detail}) while fetching ${op.what}`,
          {
            cause: err,
          },
        ),
        code === 'EAI_AGAIN' ? 'full' : 'none',
        transport,
      );
    }
    if (/CERT|^ERR_TLS_|^ERR_SSL_|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/.test(code)) {
      return new Failure(
        new UnavailableError(
          `TLS with ${who} failed (${detail}) while fetching ${op.what}: if it uses a certificate this node does not trust, install its CA or mark the registry insecure in registries.conf`,
          { cause: err },
        ),
        'none',
        transport,
      );
    }
    return new Failure(
      new UnavailableError(`connection to ${who} failed (${detail}) while fetching ${op.what}`, {
        cause: err,
      }),
      'full',
      transport,
    );
  }

  /** A non-200 answer as a typed error (or a Failure the retry loop may retry). Consumes the body. */
  private async statusFailure(
    op: Op,
    ex: Exchange,
    base: URL,
    challenge: AuthChallenge | undefined,
  ): Promise<CrispError | Failure> {
    const { response } = ex;
    const { status } = response;
    const detail = await describeStatus(response).finally(ex.done);
    const { endpoint, repository } = op.source;
    const sameOrigin = ex.url.origin === base.origin;
    if (!sameOrigin && (status === 401 || status === 403)) {
      // Blob storage behind a redirect refusing: usually an expired pre-signed URL; a new attempt gets a fresh one.
      return new Failure(
        new UnavailableError(
          `storage at ${ex.url.host} refused ${op.what} for registry ${endpoint} (${detail})`,
        ),
        'once',
        false,
      );
    }
    if (status === 401) return this.unauthenticated(op, detail, challenge);
    if (status === 403) {
      const todo =
        op.creds.kind === 'anonymous'
          ? 'add an image pull secret that may pull it'
          : 'the credentials were accepted but may not pull this repository';
      return new PermissionDeniedError(
        `registry ${endpoint} denied access to ${repository} (${detail}): ${todo}`,
      );
    }
    if (status === 404) return op.notFound(detail);
    const retryAfter = parseRetryAfter(response.headers.get('retry-after'), this.now());
    if (status === 429) {
      const error = new ResourceExhaustedError(
        `registry ${endpoint} is rate-limiting pulls (${detail}) of ${op.what}`,
      );
      if (retryAfter !== undefined && retryAfter > this.maxRetryAfterMs) {
        return new ResourceExhaustedError(
          `${error.message}: it asks to wait ${Math.ceil(retryAfter / 1000)} s; try again later or authenticate to raise the limit`,
        );
      }
      return new Failure(error, 'full', false, retryAfter);
    }
    if (status >= 500) {
      const error = new UnavailableError(`registry ${endpoint} failed (${detail}) while serving ${op.what}`);
      if (status === 501 || status === 505) return error;
      const delay = retryAfter !== undefined && retryAfter <= this.maxRetryAfterMs ? retryAfter : undefined;
      return new Failure(error, 'full', false, delay);
    }
    if (status >= 200 && status < 400) {
      return new Failure(
        new UnavailableError(`registry ${endpoint} answered an unexpected ${detail} for ${op.what}`),
        'none',
        false,
      );
    }
    return new FailedPreconditionError(`registry ${endpoint} refused ${op.what} (${detail})`);
  }

  private unauthenticated(
    op: Op,
    detail: string,
    challenge: AuthChallenge | undefined,
  ): UnauthenticatedError {
    const { endpoint, repository } = op.source;
    const { kind } = op.creds;
    if (challenge && challenge.scheme !== 'bearer' && challenge.scheme !== 'basic') {
      return new UnauthenticatedError(
        `registry ${endpoint} asks for ${JSON.stringify(challenge.scheme)} authentication for ${repository} (${detail}), which crisp does not support`,
      );
    }
    if (kind === 'anonymous') {
      return new UnauthenticatedError(
        `registry ${endpoint} requires credentials for ${repository} (${detail}): add an image pull secret, or check that the repository exists`,
      );
    }
    if (challenge?.scheme === 'basic' && kind !== 'basic') {
      return new UnauthenticatedError(
        `registry ${endpoint} asks for a username and password for ${repository} (${detail}) but the pull secret holds ${
          kind === 'identity-token' ? 'an identity token' : 'a registry token'
        }: use a username/password pull secret`,
      );
    }
    return new UnauthenticatedError(
      `registry ${endpoint} refused credentials for ${repository} (${detail}): check the pull secret`,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Authentication

  private async authorization(op: Op, signal: AbortSignal): Promise<Authorization> {
    const { creds, source } = op;
    if (creds.kind === 'registry-token') return { header: `Bearer ${creds.token}` };
    const challenge = this.challenges.get(source.endpoint);
    if (!challenge) return {};
    if (challenge.scheme === 'basic') {
      return creds.kind === 'basic' ? { header: basicAuth(creds.username, creds.password) } : {};
    }
    const { key, token, fresh } = await this.bearerToken(op, challenge, signal);
    return { header: `Bearer ${token}`, tokenKey: key, freshToken: fresh };
  }

  /**
   * Records a 401's challenge. True when retrying with fresh authorization could succeed: a
   * Bearer challenge (a new token, perhaps for a new scope) or a first Basic challenge with
   * username/password at hand.
   */
  private learnChallenge(
    op: Op,
    challenge: AuthChallenge,
    sent: Authorization,
    scheme: 'https' | 'http',
  ): boolean {
    const { endpoint, repository } = op.source;
    if (op.creds.kind === 'registry-token') return false;
    if (challenge.scheme === 'bearer') {
      const realmText = challenge.params.get('realm');
      if (!realmText) return false;
      let realm: URL;
      try {
        realm = new URL(realmText);
      } catch (cause) {
        throw new UnavailableError(`registry ${endpoint} sent an invalid token realm in its challenge`, {
          cause,
        });
      }
      if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && op.source.insecure)) {
        throw new FailedPreconditionError(
          `registry ${endpoint} wants tokens from ${realm.protocol}//${realm.host}; crisp fetches tokens only over https unless the registry is marked insecure in registries.conf`,
        );
      }
      realm.username = '';
      realm.password = '';
      const service = challenge.params.get('service');
      const scopeKey = `${endpoint}\0${repository}`;
      const scopes = (challenge.params.get('scope') ?? '').split(' ').filter(Boolean);
      const before = this.challenges.get(endpoint);
      const unchanged =
        before?.scheme === 'bearer' &&
        before.realm.href === realm.href &&
        before.service === service &&
        scopes.every(
          (sc) => sc === `repository:${repository}:pull` || this.extraScopes.get(scopeKey)?.includes(sc),
        );
      this.challenges.set(endpoint, { scheme: 'bearer', realm, service });
      if (scopes.length > 0) this.extraScopes.set(scopeKey, scopes);
      if (sent.tokenKey !== undefined) this.tokens.delete(sent.tokenKey);
      // A token fetched just now for this very challenge was refused: another would be too.
      if (unchanged && sent.freshToken === true) return false;
      this.log.debug({ endpoint, scheme, realm: safeUrl(realm) }, 'registry asks for a bearer token');
      return true;
    }
    if (challenge.scheme === 'basic') {
      this.challenges.set(endpoint, { scheme: 'basic' });
      return op.creds.kind === 'basic' && !sent.header?.startsWith('Basic ');
    }
    return false;
  }

  private async bearerToken(
    op: Op,
    challenge: Extract<StoredChallenge, { scheme: 'bearer' }>,
    signal: AbortSignal,
  ): Promise<{ key: string; token: string; fresh: boolean }> {
    const { endpoint, repository } = op.source;
    const scopes = [
      ...new Set([
        `repository:${repository}:pull`,
        ...(this.extraScopes.get(`${endpoint}\0${repository}`) ?? []),
      ]),
    ].sort();
    const key = JSON.stringify([
      endpoint,
      challenge.realm.href,
      challenge.service ?? '',
      scopes,
      credentialKey(op.creds),
    ]);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return { key, token: cached.token, fresh: false };

    const start = (): Promise<CachedToken> => {
      const pending = this.fetchToken(op, challenge, scopes, signal).finally(() => {
        if (this.pendingTokens.get(key) === pending) this.pendingTokens.delete(key);
      });
      this.pendingTokens.set(key, pending);
      return pending;
    };
    const shared = this.pendingTokens.get(key);
    let fresh: CachedToken;
    try {
      fresh = await (shared ?? start());
    } catch (err) {
      // Another pull's token request was canceled under us: ask for our own.
      if (shared === undefined || !(err instanceof CanceledError) || signal.aborted) throw err;
      fresh = await start();
    }
    this.remember(key, fresh);
    return { key, token: fresh.token, fresh: true };
  }

  /** Caches a token, dropping expired ones once the cache grows (one entry per registry, repository and secret). */
  private remember(key: string, token: CachedToken): void {
    if (this.tokens.size >= TOKEN_CACHE_SWEEP_AT) {
      const now = this.now();
      for (const [k, t] of this.tokens) if (t.expiresAt <= now) this.tokens.delete(k);
    }
    this.tokens.set(key, token);
  }

  private async fetchToken(
    op: Op,
    challenge: Extract<StoredChallenge, { scheme: 'bearer' }>,
    scopes: string[],
    signal: AbortSignal,
  ): Promise<CachedToken> {
    const tokenOp: Op = { ...op, what: `a token for ${op.source.repository} from ${challenge.realm.host}` };
    if (op.creds.kind === 'identity-token') {
      const viaOAuth = await this.withRetries(tokenOp, signal, () =>
        this.tokenRequest(tokenOp, challenge, 'POST', scopes, signal),
      );
      if (viaOAuth !== 'unsupported') return viaOAuth;
      this.log.debug({ endpoint: op.source.endpoint }, 'token server has no OAuth2 POST; using GET');
    }
    const viaGet = await this.withRetries(tokenOp, signal, () =>
      this.tokenRequest(tokenOp, challenge, 'GET', scopes, signal),
    );
    if (viaGet === 'unsupported') {
      throw new UnavailableError(`token server ${challenge.realm.host} did not answer`);
    }
    return viaGet;
  }

  private async tokenRequest(
    op: Op,
    challenge: Extract<StoredChallenge, { scheme: 'bearer' }>,
    method: 'GET' | 'POST',
    scopes: string[],
    signal: AbortSignal,
  ): Promise<CachedToken | 'unsupported'> {
    const { creds } = op;
    const { endpoint, repository } = op.source;
    const url = new URL(challenge.realm.href);
    const headers: Record<string, string> = { 'user-agent': this.userAgent, accept: 'application/json' };
    let body: string | undefined;
    if (method === 'GET') {
      if (challenge.service !== undefined) url.searchParams.set('service', challenge.service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      if (creds.kind === 'basic') headers['authorization'] = basicAuth(creds.username, creds.password);
      // As containerd does: an identity token in the GET form rides as the Basic password.
      if (creds.kind === 'identity-token') headers['authorization'] = basicAuth('', creds.token);
    } else {
      if (creds.kind !== 'identity-token') {
        throw new InternalError('the OAuth2 token form is only for identity tokens');
      }
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: creds.token,
        client_id: OAUTH_CLIENT_ID,
      });
      if (challenge.service !== undefined) form.set('service', challenge.service);
      form.set('scope', scopes.join(' '));
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = form.toString();
    }

    const ex = await this.exchange(op, url, { method, headers, body }, signal);
    try {
      const { response } = ex;
      const { status } = response;
      if (method === 'POST' && (status === 404 || status === 405)) {
        await discard(ex);
        return 'unsupported';
      }
      if (status !== 200) {
        const detail = await describeStatus(response);
        const server = `token server ${challenge.realm.host}`;
        if (status === 401 || status === 403) {
          throw new UnauthenticatedError(
            creds.kind === 'anonymous'
              ? `registry ${endpoint} requires credentials for ${repository} (${server} answered ${detail}): add an image pull secret`
              : `registry ${endpoint} refused credentials for ${repository} (${server} answered ${detail}): check the pull secret`,
          );
        }
        const error = new UnavailableError(
          `${server} for registry ${endpoint} answered ${detail} when asked for ${op.what}`,
        );
        if (status === 429 || (status >= 500 && status !== 501)) {
          const retryAfter = parseRetryAfter(response.headers.get('retry-after'), this.now());
          const delay =
            retryAfter !== undefined && retryAfter <= this.maxRetryAfterMs ? retryAfter : undefined;
          throw new Failure(error, 'full', false, delay);
        }
        throw error;
      }
      const invalid = (why: string, cause?: unknown): UnavailableError =>
        new UnavailableError(`token server ${challenge.realm.host} for registry ${endpoint} sent ${why}`, {
          cause,
        });
      const tooLarge = invalid(`an answer larger than ${MAX_TOKEN_BYTES} bytes`);
      const bytes = await readLimited(response, MAX_TOKEN_BYTES, tooLarge).catch((err: unknown) => {
        if (err === tooLarge) throw tooLarge;
        throw this.failure(err, op, url, signal, ex.timedOut, false);
      });
      let json: unknown;
      try {
        json = JSON.parse(bytes.toString('utf8'));
      } catch (cause) {
        throw invalid('an answer that is not JSON', cause);
      }
      const parsed = tokenResponseSchema.safeParse(json);
      const token = parsed.success ? parsed.data.token || parsed.data.access_token : undefined;
      if (!parsed.success || !token) throw invalid('no token');
      const lifetime = Number(parsed.data.expires_in);
      const lifetimeMs =
        (Number.isFinite(lifetime) && lifetime > 0 ? lifetime : DEFAULT_TOKEN_LIFETIME_S) * 1000;
      // Renew a little early so a token does not expire between cache check and use.
      return { token, expiresAt: this.now() + lifetimeMs - Math.min(10_000, lifetimeMs / 10) };
    } finally {
      ex.done();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Streams

  private toNodeStream(ex: Exchange, op: Op, signal: AbortSignal): Readable {
    const { body } = ex.response;
    if (!body) return Readable.from([]);
    const source = Readable.fromWeb(body as WebReadableStream<Uint8Array>);
    const out = new PassThrough();
    source.once('error', (err) => {
      const failure = this.failure(err, op, ex.url, signal, ex.timedOut, false);
      out.destroy(failure instanceof Failure ? failure.error : failure);
    });
    out.once('close', () => {
      if (!source.destroyed) source.destroy();
    });
    source.pipe(out);
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function validateSource(source: PullSource): void {
  if (!ENDPOINT_RE.test(source.endpoint)) {
    throw new InvalidArgumentError('registry', `${JSON.stringify(source.endpoint)} is not a host[:port]`);
  }
  if (!REPOSITORY_RE.test(source.repository)) {
    throw new InvalidArgumentError(
      'image',
      `repository ${JSON.stringify(source.repository)} is not a valid repository path`,
    );
  }
}

/** URL.host of an endpoint (default ports dropped, as URL does). */
function hostOf(endpoint: string): string {
  return new URL(`https://${endpoint}`).host;
}

/** Origin and path only: query strings of pre-signed URLs carry credentials. */
function safeUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

function basicAuth(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/** A short hash naming the credentials in cache keys, so tokens are never shared across secrets. */
function credentialKey(creds: Credentials): string {
  switch (creds.kind) {
    case 'anonymous':
      return 'anonymous';
    case 'basic':
      return hash(`basic\0${creds.username}\0${creds.password}`);
    case 'identity-token':
      return hash(`identity\0${creds.token}`);
    case 'registry-token':
      return hash(`registry\0${creds.token}`);
  }
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** The `code` of an error or of its causes (undici wraps socket errors, AggregateError for several addresses). */
function errorCode(err: unknown, depth = 0): string | undefined {
  if (depth > 5 || typeof err !== 'object' || err === null) return undefined;
  const code: unknown = Reflect.get(err, 'code');
  if (typeof code === 'string' && code !== '' && code !== 'ABORT_ERR') return code;
  if (err instanceof AggregateError) {
    for (const inner of err.errors) {
      const found = errorCode(inner, depth + 1);
      if (found) return found;
    }
  }
  return errorCode(Reflect.get(err, 'cause'), depth + 1);
}

/** Retry-After as milliseconds from now (delta-seconds or an HTTP date); undefined when absent or unreadable. */
function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** "HTTP 404 MANIFEST_UNKNOWN", with the registry's message when it adds something. Consumes the body. */
async function describeStatus(response: Response): Promise<string> {
  let text = '';
  try {
    text = (await readLimited(response, MAX_ERROR_BODY_BYTES, new Error('too large'))).toString('utf8');
  } catch {
    // An unreadable error body leaves just the status.
  }
  let detail = `HTTP ${response.status}`;
  try {
    const parsed = errorBodySchema.safeParse(JSON.parse(text));
    const first = parsed.success ? parsed.data.errors[0] : undefined;
    if (first) {
      const code = typeof first.code === 'string' ? oneLine(first.code, 64) : '';
      const message = typeof first.message === 'string' ? oneLine(first.message, 200) : '';
      if (code) detail += ` ${code}`;
      const redundant = message.toLowerCase() === code.toLowerCase().replace(/_/g, ' ');
      if (message && !redundant) detail += `: ${message}`;
    }
  } catch {
    // Not JSON: the status says enough.
  }
  return detail;
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** The whole body, refusing more than `limit` bytes (then `tooLarge` is thrown). */
async function readLimited(response: Response, limit: number, tooLarge: Error): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge;
  }
  if (!response.body) return Buffer.alloc(0);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge;
    }
    chunks.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  }
  return Buffer.concat(chunks, total);
}

/** Drops a response we will not read, so its connection is released. */
async function discard(ex: Exchange): Promise<void> {
  ex.done();
  await ex.response.body?.cancel().catch(() => undefined);
}

let unverifiedTlsAgent: Promise<Dispatcher | undefined> | undefined;

/**
 * An undici Agent that skips certificate verification, for https to insecure registries only.
 * Node 20 bundles undici without exporting its classes; the global dispatcher it installs on the
 * first fetch is an Agent, so its constructor makes another with `rejectUnauthorized: false`.
 * Without it (a future Node that changes this), insecure registries fall back to verified TLS
 * and then plain http.
 */
function unverifiedTls(): Promise<Dispatcher | undefined> {
  unverifiedTlsAgent ??= (async (): Promise<Dispatcher | undefined> => {
    const key = Symbol.for('undici.globalDispatcher.1');
    if (Reflect.get(globalThis, key) === undefined) await (await fetch('data:,')).arrayBuffer();
    const global: unknown = Reflect.get(globalThis, key);
    if (typeof global !== 'object' || global === null) return undefined;
    const ctor: unknown = global.constructor;
    if (typeof ctor !== 'function' || ctor.name !== 'Agent') return undefined;
    const agent: unknown = Reflect.construct(ctor, [{ connect: { rejectUnauthorized: false } }]);
    return agent as Dispatcher;
  })().catch(() => undefined);
  return unverifiedTlsAgent;
}
