import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  CanceledError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from '../errors.js';
import { createLogger } from '../log/logger.js';
import { computeDigest, parseManifest, selectPlatform } from './manifest.js';
import { MANIFEST_ACCEPT, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST } from './media-types.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';
import type { Credentials, PullSource } from './types.js';

// ---------------------------------------------------------------------------------------------
// A fake registry on 127.0.0.1

interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
}

type Handler = (req: Seen, res: ServerResponse) => void;

interface Fake {
  endpoint: string;
  port: number;
  seen: Seen[];
  close: () => Promise<void>;
}

const servers: Server[] = [];
after(async () => {
  await Promise.all(servers.map((s) => closeServer(s)));
});

async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
}

async function serve(handler: Handler, server: Server = createHttpServer()): Promise<Fake> {
  const seen: Seen[] = [];
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const entry = {
        method: req.method ?? '',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(entry);
      handler(entry, res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  const { port } = server.address() as AddressInfo;
  return { endpoint: `127.0.0.1:${port}`, port, seen, close: () => closeServer(server) };
}

function send(
  res: ServerResponse,
  status: number,
  body: string | Buffer = '',
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, headers);
  res.end(body);
}

function registryError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers = {},
): void {
  send(res, status, JSON.stringify({ errors: [{ code, message, detail: null }] }), {
    'content-type': 'application/json',
    ...headers,
  });
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createHttpServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}

const log = createLogger({ level: 'silent', format: 'json' });
const client = (opts: Partial<RegistryClientOptions> = {}): RegistryClient =>
  new RegistryClient({ log, userAgent: 'crisp-test/1', retryBaseMs: 1, requestTimeoutMs: 5_000, ...opts });
const src = (endpoint: string, repository = 'x', insecure = true): PullSource => ({
  endpoint,
  repository,
  insecure,
  mirror: false,
});
const anon: Credentials = { kind: 'anonymous' };
const never = new AbortController().signal;

const manifestBytes = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: computeDigest(Buffer.from('{}')), size: 2 },
    layers: [{ mediaType: OCI_LAYER_GZIP, digest: computeDigest(Buffer.from('layer')), size: 5 }],
  }),
);
const manifestDigest = computeDigest(manifestBytes);
const serveManifest = (res: ServerResponse): void => {
  send(res, 200, manifestBytes, { 'content-type': `${OCI_MANIFEST}; charset=utf-8` });
};

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function expectError<T extends Error>(
  promise: Promise<unknown>,
  type: new (...args: never[]) => T,
  pattern?: RegExp,
): Promise<T> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    if (pattern) assert.match(err.message, pattern);
    return err;
  }
  assert.fail(`expected ${type.name}, got success`);
}

// ---------------------------------------------------------------------------------------------

describe('RegistryClient: manifests', () => {
  it('fetches by tag: Accept and User-Agent sent, exact bytes, media type without parameters, sha256', async () => {
    const reg = await serve((req, res) => {
      serveManifest(res);
    });
    const got = await client().getManifest(src(reg.endpoint, 'library/busybox'), 'latest', anon, never);
    assert.deepEqual(got.bytes, manifestBytes);
    assert.equal(got.mediaType, OCI_MANIFEST);
    assert.equal(got.digest, manifestDigest);
    const [req] = reg.seen;
    assert.equal(req?.path, '/v2/library/busybox/manifests/latest');
    assert.equal(req.headers.accept, MANIFEST_ACCEPT);
    assert.equal(req.headers['user-agent'], 'crisp-test/1');
    assert.equal(req.headers.authorization, undefined);
  });

  it('fetches by digest and refuses content whose digest differs', async () => {
    const reg = await serve((req, res) => {
      serveManifest(res);
    });
    const c = client();
    const got = await c.getManifest(src(reg.endpoint), manifestDigest, anon, never);
    assert.equal(got.digest, manifestDigest);
    const other = computeDigest(Buffer.from('other'));
    const err = await expectError(c.getManifest(src(reg.endpoint), other, anon, never), UnavailableError);
    assert.match(
      err.message,
      new RegExp(`registry ${reg.endpoint} served manifest ${reg.endpoint}/x@${other}`),
    );
    assert.match(err.message, new RegExp(`digest ${manifestDigest}; refusing`));
  });

  it('walks an index to the host platform, the Content-Type choosing how to parse', async () => {
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: OCI_MANIFEST,
            digest: computeDigest(Buffer.from('no')),
            size: 2,
            platform: { os: 'linux', architecture: 'arm64' },
          },
          {
            mediaType: OCI_MANIFEST,
            digest: manifestDigest,
            size: manifestBytes.length,
            platform: { os: 'linux', architecture: 'amd64' },
          },
        ],
      }),
    );
    const reg = await serve((req, res) => {
      if (req.path.endsWith('/manifests/1')) send(res, 200, index, { 'content-type': OCI_INDEX });
      else if (req.path.endsWith(`/manifests/${manifestDigest}`)) serveManifest(res);
      else registryError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
    });
    const c = client();
    const top = await c.getManifest(src(reg.endpoint), '1', anon, never);
    const parsed = parseManifest(top.bytes, top.mediaType);
    assert.equal(parsed.kind, 'index');
    const chosen = selectPlatform(parsed, { os: 'linux', architecture: 'amd64' });
    const child = await c.getManifest(src(reg.endpoint), chosen.digest, anon, never);
    assert.equal(parseManifest(child.bytes, child.mediaType).kind, 'image');
  });

  it('refuses malformed references before any request', async () => {
    const c = client();
    await expectError(c.getManifest(src('127.0.0.1:1'), 'bad tag', anon, never), InvalidArgumentError);
    await expectError(
      c.getManifest(src('127.0.0.1:1'), 'sha256:abc', anon, never),
      InvalidArgumentError,
      /64 lowercase hex/,
    );
    await expectError(
      c.getManifest(src('127.0.0.1:1'), 'md5:abcd', anon, never),
      InvalidArgumentError,
      /sha256 and sha512/,
    );
    await expectError(
      c.getManifest(src('a/b'), 'latest', anon, never),
      InvalidArgumentError,
      /host\[:port\]/,
    );
    await expectError(c.getManifest(src('127.0.0.1:1', '../x'), 'latest', anon, never), InvalidArgumentError);
    await expectError(c.getBlob(src('127.0.0.1:1'), 'nope', anon, never), InvalidArgumentError);
  });

  it('refuses a manifest larger than 4 MiB', async () => {
    const reg = await serve((req, res) => {
      send(res, 200, Buffer.alloc(4 * 1024 * 1024 + 1, 0x20), { 'content-type': OCI_MANIFEST });
    });
    await expectError(
      client().getManifest(src(reg.endpoint), 'big', anon, never),
      ResourceExhaustedError,
      /larger than/,
    );
  });
});

describe('RegistryClient: errors', () => {
  it('404 → NotFoundError naming the image and the registry code', async () => {
    const reg = await serve((req, res) => {
      registryError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
    });
    const err = await expectError(
      client().getManifest(src(reg.endpoint), 'nope', anon, never),
      NotFoundError,
    );
    assert.equal(
      err.message,
      `image "${reg.endpoint}/x:nope" not found: registry answered HTTP 404 MANIFEST_UNKNOWN`,
    );
    const blob = computeDigest(Buffer.from('b'));
    await expectError(
      client().getBlob(src(reg.endpoint), blob, anon, never),
      NotFoundError,
      new RegExp(
        `blob "${blob}" not found: registry ${reg.endpoint} has no such blob in x \\(HTTP 404 MANIFEST_UNKNOWN\\)`,
      ),
    );
  });

  it('401 → UnauthenticatedError; 403 → PermissionDeniedError; other 4xx → FailedPrecondition; no secrets in messages', async () => {
    const reg = await serve((req, res) => {
      if (req.path.includes('/denied/'))
        registryError(res, 403, 'DENIED', 'requested access to the resource is denied');
      else if (req.path.includes('/odd/')) registryError(res, 400, 'NAME_INVALID', 'invalid repository name');
      else
        registryError(res, 401, 'UNAUTHORIZED', 'authentication required', {
          'www-authenticate': 'Basic realm="r"',
        });
    });
    const creds: Credentials = { kind: 'basic', username: 'alice', password: 's3cret-pw' };
    const c = client();
    const e1 = await expectError(
      c.getManifest(src(reg.endpoint, 'private/busybox'), '1', creds, never),
      UnauthenticatedError,
    );
    assert.equal(
      e1.message,
      `registry ${reg.endpoint} refused credentials for private/busybox (HTTP 401 UNAUTHORIZED: authentication required): check the pull secret`,
    );
    await expectError(
      client().getManifest(src(reg.endpoint, 'private/busybox'), '1', anon, never),
      UnauthenticatedError,
      /requires credentials for private\/busybox .*add an image pull secret/,
    );
    const e2 = await expectError(
      c.getManifest(src(reg.endpoint, 'denied/x'), '1', creds, never),
      PermissionDeniedError,
    );
    assert.match(
      e2.message,
      /denied access to denied\/x \(HTTP 403 DENIED: requested access to the resource is denied\)/,
    );
    await expectError(
      c.getManifest(src(reg.endpoint, 'odd/x'), '1', creds, never),
      FailedPreconditionError,
      /HTTP 400 NAME_INVALID/,
    );
    for (const e of [e1, e2]) assert.ok(!e.message.includes('s3cret') && !e.message.includes('alice'));
  });

  it('connection refused → UnavailableError naming the endpoint, retried only a little', async () => {
    const port = await closedPort();
    const err = await expectError(
      client({ retries: 5 }).getManifest(src(`127.0.0.1:${port}`), 'latest', anon, never),
      UnavailableError,
    );
    assert.match(
      err.message,
      new RegExp(`registry 127\\.0\\.0\\.1:${port} is not reachable \\(ECONNREFUSED\\)`),
    );
    assert.match(err.message, /manifest 127\.0\.0\.1:\d+\/x:latest/);
  });

  it('no response headers within requestTimeoutMs → DeadlineExceededError', async () => {
    const reg = await serve(() => {
      // never answer
    });
    const err = await expectError(
      client({ requestTimeoutMs: 150, retries: 1 }).getManifest(src(reg.endpoint), 'slow', anon, never),
      DeadlineExceededError,
    );
    assert.match(
      err.message,
      new RegExp(`registry ${reg.endpoint} did not answer within 150 ms while fetching manifest`),
    );
    assert.equal(reg.seen.length, 2, 'one retry');
  });

  it('the caller aborting → CanceledError, before or during a request and during backoff', async () => {
    const reg = await serve((req, res) => {
      if (req.path.includes('/busy/')) registryError(res, 503, 'UNAVAILABLE', 'busy');
      // else: never answer
    });
    const ac = new AbortController();
    setTimeout(() => {
      ac.abort();
    }, 100);
    const started = Date.now();
    await expectError(
      client().getManifest(src(reg.endpoint), 'hang', anon, ac.signal),
      CanceledError,
      /canceled/,
    );
    assert.ok(Date.now() - started < 2_000);
    await expectError(client().getManifest(src(reg.endpoint), 'x', anon, AbortSignal.abort()), CanceledError);
    const ac2 = new AbortController();
    setTimeout(() => {
      ac2.abort();
    }, 100);
    await expectError(
      client({ retryBaseMs: 10_000 }).getManifest(src(reg.endpoint, 'busy/x'), 'x', anon, ac2.signal),
      CanceledError,
    );
  });

  it('a secure source never falls back to http', async () => {
    const reg = await serve((req, res) => {
      serveManifest(res);
    });
    await expectError(
      client().getManifest(src(reg.endpoint, 'x', false), 'latest', anon, never),
      UnavailableError,
      new RegExp(`TLS with registry ${reg.endpoint} failed .*mark the registry insecure`),
    );
    assert.equal(reg.seen.length, 0);
  });
});

describe('RegistryClient: retries', () => {
  it('retries 5xx and succeeds', async () => {
    let n = 0;
    const reg = await serve((req, res) => {
      if (++n < 3) registryError(res, 503, 'UNAVAILABLE', 'try later');
      else serveManifest(res);
    });
    const got = await client().getManifest(src(reg.endpoint), 'latest', anon, never);
    assert.equal(got.digest, manifestDigest);
    assert.equal(reg.seen.length, 3);
  });

  it('gives up after `retries` with UnavailableError naming the status', async () => {
    const reg = await serve((req, res) => {
      send(res, 502, 'bad gateway');
    });
    const err = await expectError(
      client({ retries: 2 }).getManifest(src(reg.endpoint), 'latest', anon, never),
      UnavailableError,
    );
    assert.equal(
      err.message,
      `registry ${reg.endpoint} failed (HTTP 502) while serving manifest ${reg.endpoint}/x:latest`,
    );
    assert.equal(reg.seen.length, 3);
  });

  it('does not retry other 4xx', async () => {
    const reg = await serve((req, res) => {
      registryError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
    });
    await expectError(client().getManifest(src(reg.endpoint), 'latest', anon, never), NotFoundError);
    assert.equal(reg.seen.length, 1);
  });

  it('honours Retry-After on 429, and fails at once when it is longer than the cap', async () => {
    let n = 0;
    const reg = await serve((req, res) => {
      if (req.path.includes('/limited/')) {
        registryError(res, 429, 'TOOMANYREQUESTS', 'slow down', { 'retry-after': '3600' });
      } else if (++n === 1) {
        registryError(res, 429, 'TOOMANYREQUESTS', 'slow down', { 'retry-after': '1' });
      } else serveManifest(res);
    });
    const started = Date.now();
    await client().getManifest(src(reg.endpoint), 'latest', anon, never);
    assert.ok(Date.now() - started >= 950, 'waited for Retry-After');
    const err = await expectError(
      client({ maxRetryAfterMs: 5_000 }).getManifest(src(reg.endpoint, 'limited/x'), 'latest', anon, never),
      ResourceExhaustedError,
    );
    assert.match(err.message, /rate-limiting pulls \(HTTP 429 TOOMANYREQUESTS: slow down\).*wait 3600 s/);
    assert.equal(reg.seen.filter((s) => s.path.includes('/limited/')).length, 1);
  });

  it('429 exhausted → ResourceExhaustedError', async () => {
    const reg = await serve((req, res) => {
      registryError(res, 429, 'TOOMANYREQUESTS', 'slow down');
    });
    await expectError(
      client({ retries: 1 }).getManifest(src(reg.endpoint), 'latest', anon, never),
      ResourceExhaustedError,
    );
    assert.equal(reg.seen.length, 2);
  });
});

describe('RegistryClient: authentication', () => {
  /** A registry whose token server (same server, /token) issues "tok-<n>" for alice:pw. */
  async function tokenRegistry(opts: { expiresIn?: number; oauth?: 'yes' | 'no' } = {}) {
    let issued = 0;
    const valid = new Set<string>();
    const reg: Fake = await serve((req, res) => {
      if (req.path === '/token') {
        if (req.method === 'POST') {
          if (opts.oauth !== 'yes') {
            send(res, 404, 'not found');
            return;
          }
          const form = new URLSearchParams(req.body);
          if (form.get('grant_type') !== 'refresh_token' || form.get('refresh_token') !== 'idt-123') {
            send(res, 401, '{"errors":[{"code":"UNAUTHORIZED","message":"bad refresh token"}]}');
            return;
          }
          const token = `tok-${++issued}`;
          valid.add(token);
          send(res, 200, JSON.stringify({ access_token: token, expires_in: opts.expiresIn ?? 300 }));
          return;
        }
        const auth = req.headers.authorization;
        const basic = (u: string, p: string): string =>
          `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
        if (auth !== undefined && auth !== basic('alice', 'pw') && auth !== basic('', 'idt-123')) {
          registryError(res, 401, 'UNAUTHORIZED', 'bad credentials');
          return;
        }
        const token = `tok-${++issued}`;
        if (auth !== undefined) valid.add(token);
        const body: Record<string, unknown> = { token };
        if (opts.expiresIn !== undefined) body['expires_in'] = opts.expiresIn;
        send(res, 200, JSON.stringify(body), { 'content-type': 'application/json' });
        return;
      }
      const bearer = req.headers.authorization?.replace(/^Bearer /, '');
      if (bearer === undefined || !valid.has(bearer)) {
        const repo = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(req.path)?.[1] ?? '';
        registryError(res, 401, 'UNAUTHORIZED', 'authentication required', {
          'www-authenticate': `Bearer realm="http://${reg.endpoint}/token",service="fake,registry",scope="repository:${repo}:pull"`,
        });
        return;
      }
      serveManifest(res);
    });
    return reg;
  }
  const alice: Credentials = { kind: 'basic', username: 'alice', password: 'pw' };

  it('bearer: challenge → token GET with service, scope and Basic → retry; token cached per scope', async () => {
    const reg = await tokenRegistry();
    const c = client();
    await c.getManifest(src(reg.endpoint, 'private/busybox'), 'latest', alice, never);
    const tokenRequests = (): Seen[] => reg.seen.filter((s) => s.path === '/token');
    assert.equal(tokenRequests().length, 1);
    const [t] = tokenRequests();
    assert.equal(t?.query.get('service'), 'fake,registry');
    assert.deepEqual(t.query.getAll('scope'), ['repository:private/busybox:pull']);
    assert.equal(t.headers.authorization, `Basic ${Buffer.from('alice:pw').toString('base64')}`);

    const before = reg.seen.length;
    await c.getManifest(src(reg.endpoint, 'private/busybox'), 'latest', alice, never);
    assert.equal(reg.seen.length, before + 1, 'the cached token went with the first request');
    assert.equal(reg.seen.at(-1)?.headers.authorization, 'Bearer tok-1');

    await c.getManifest(src(reg.endpoint, 'private/other'), 'latest', alice, never);
    assert.equal(tokenRequests().length, 2, 'a new scope needs a new token');
    assert.deepEqual(tokenRequests()[1]?.query.getAll('scope'), ['repository:private/other:pull']);
  });

  it('bearer: concurrent pulls share one token request; other credentials never share a token', async () => {
    const reg = await tokenRegistry();
    const c = client();
    await c.getManifest(src(reg.endpoint, 'a/b'), 'latest', alice, never);
    await Promise.all([1, 2, 3].map(() => c.getManifest(src(reg.endpoint, 'c/d'), 'latest', alice, never)));
    assert.equal(reg.seen.filter((s) => s.path === '/token').length, 2);
    await expectError(
      c.getManifest(src(reg.endpoint, 'c/d'), 'latest', anon, never),
      UnauthenticatedError,
      /requires credentials for c\/d/,
    );
    assert.equal(
      reg.seen.filter((s) => s.path === '/token').length,
      3,
      'anonymous got its own (useless) token',
    );
  });

  it('bearer: a token is renewed after expires_in (default 60 s)', async () => {
    const reg = await tokenRegistry();
    let now = 1_000_000;
    const c = client({ now: () => now });
    await c.getManifest(src(reg.endpoint, 'a/b'), 'latest', alice, never);
    now += 50_000;
    await c.getManifest(src(reg.endpoint, 'a/b'), 'latest', alice, never);
    assert.equal(reg.seen.filter((s) => s.path === '/token').length, 1);
    now += 10_000;
    await c.getManifest(src(reg.endpoint, 'a/b'), 'latest', alice, never);
    assert.equal(reg.seen.filter((s) => s.path === '/token').length, 2);
  });

  it('bearer: wrong credentials → UnauthenticatedError naming the token server, nothing secret', async () => {
    const reg = await tokenRegistry();
    const err = await expectError(
      client().getManifest(
        src(reg.endpoint, 'private/busybox'),
        'latest',
        { kind: 'basic', username: 'alice', password: 'wrong-pw' },
        never,
      ),
      UnauthenticatedError,
    );
    assert.equal(
      err.message,
      `registry ${reg.endpoint} refused credentials for private/busybox (token server ${reg.endpoint} answered HTTP 401 UNAUTHORIZED: bad credentials): check the pull secret`,
    );
    assert.ok(!err.message.includes('wrong-pw'));
  });

  it('identity token: OAuth2 POST with grant_type=refresh_token', async () => {
    const reg = await tokenRegistry({ oauth: 'yes' });
    await client().getManifest(
      src(reg.endpoint, 'a/b'),
      'latest',
      { kind: 'identity-token', token: 'idt-123' },
      never,
    );
    const posts = reg.seen.filter((s) => s.path === '/token');
    assert.equal(posts.length, 1);
    assert.equal(posts[0]?.method, 'POST');
    assert.equal(posts[0].headers['content-type'], 'application/x-www-form-urlencoded');
    const form = new URLSearchParams(posts[0].body);
    assert.equal(form.get('refresh_token'), 'idt-123');
    assert.equal(form.get('service'), 'fake,registry');
    assert.equal(form.get('scope'), 'repository:a/b:pull');
    assert.equal(form.get('client_id'), 'crisp');
  });

  it('identity token: falls back to GET when the POST answers 404', async () => {
    const reg = await tokenRegistry({ oauth: 'no' });
    await client().getManifest(
      src(reg.endpoint, 'a/b'),
      'latest',
      { kind: 'identity-token', token: 'idt-123' },
      never,
    );
    const tokenCalls = reg.seen.filter((s) => s.path === '/token').map((s) => s.method);
    assert.deepEqual(tokenCalls, ['POST', 'GET']);
  });

  it('registry token: sent as Bearer from the first request, no token server', async () => {
    const reg = await serve((req, res) => {
      if (req.headers.authorization === 'Bearer reg-tok') serveManifest(res);
      else
        registryError(res, 401, 'UNAUTHORIZED', 'no', {
          'www-authenticate': 'Bearer realm="http://127.0.0.1:1/t"',
        });
    });
    await client().getManifest(
      src(reg.endpoint),
      'latest',
      { kind: 'registry-token', token: 'reg-tok' },
      never,
    );
    assert.equal(reg.seen.length, 1);
    await expectError(
      client().getManifest(src(reg.endpoint), 'latest', { kind: 'registry-token', token: 'bad' }, never),
      UnauthenticatedError,
      /refused credentials/,
    );
  });

  it('basic: a Basic challenge → Basic on the retry and on every later request', async () => {
    const good = `Basic ${Buffer.from('alice:pw').toString('base64')}`;
    const reg = await serve((req, res) => {
      if (req.headers.authorization === good) serveManifest(res);
      else
        registryError(res, 401, 'UNAUTHORIZED', 'auth', {
          'www-authenticate': 'Basic realm="Registry Realm"',
        });
    });
    const c = client();
    await c.getManifest(src(reg.endpoint), 'latest', alice, never);
    assert.deepEqual(
      reg.seen.map((s) => s.headers.authorization),
      [undefined, good],
    );
    await c.getManifest(src(reg.endpoint, 'y'), 'latest', alice, never);
    assert.equal(reg.seen.length, 3);
    assert.equal(reg.seen[2]?.headers.authorization, good);
    await expectError(
      client().getManifest(src(reg.endpoint), 'latest', { kind: 'identity-token', token: 't' }, never),
      UnauthenticatedError,
      /asks for a username and password .* identity token/,
    );
  });
});

describe('RegistryClient: blobs and redirects', () => {
  const blob = Buffer.from('layer bytes '.repeat(10_000));
  const blobDigest = computeDigest(blob);

  it('streams a blob, following a redirect to another port without Authorization', async () => {
    const storage = await serve((req, res) => {
      send(res, 200, blob, { 'content-type': 'application/octet-stream' });
    });
    const reg = await serve((req, res) => {
      if (req.headers.authorization !== 'Bearer reg-tok') {
        registryError(res, 401, 'UNAUTHORIZED', 'no');
        return;
      }
      if (req.path === `/v2/x/blobs/${blobDigest}`) {
        send(res, 307, '', { location: `/hop1/${blobDigest}` });
        return;
      }
      if (req.path.startsWith('/hop1/')) {
        send(res, 302, '', { location: `http://${storage.endpoint}/data?sig=secret-sig` });
        return;
      }
      registryError(res, 404, 'BLOB_UNKNOWN', 'blob unknown');
    });
    const stream = await client().getBlob(
      src(reg.endpoint),
      blobDigest,
      { kind: 'registry-token', token: 'reg-tok' },
      never,
    );
    const bytes = await readAll(stream);
    assert.equal(computeDigest(bytes), blobDigest);
    assert.equal(reg.seen.length, 2);
    assert.equal(reg.seen[1]?.headers.authorization, 'Bearer reg-tok', 'same origin keeps Authorization');
    assert.equal(storage.seen.length, 1);
    assert.equal(storage.seen[0]?.headers.authorization, undefined);
    assert.equal(storage.seen[0]?.query.get('sig'), 'secret-sig');
  });

  it('stops after 5 redirects', async () => {
    const reg = await serve((req, res) => {
      send(res, 302, '', { location: `/loop${reg.seen.length}` });
    });
    await expectError(
      client().getBlob(src(reg.endpoint), blobDigest, anon, never),
      UnavailableError,
      /redirected blob .* more than 5 times/,
    );
    assert.equal(reg.seen.length, 6);
  });

  it('retries a storage 403 once (expired pre-signed URL) and gets a fresh redirect', async () => {
    let storageHits = 0;
    const storage = await serve((req, res) => {
      if (++storageHits === 1) send(res, 403, '<Error>Request has expired</Error>');
      else send(res, 200, blob);
    });
    const reg = await serve((req, res) => {
      send(res, 307, '', { location: `http://${storage.endpoint}/b` });
    });
    const bytes = await readAll(await client().getBlob(src(reg.endpoint), blobDigest, anon, never));
    assert.equal(bytes.length, blob.length);
    assert.equal(reg.seen.length, 2);
  });

  it('a blob stream ends with CanceledError when the caller aborts mid-download', async () => {
    const reg = await serve((req, res) => {
      res.writeHead(200, { 'content-length': String(blob.length * 2) });
      res.write(blob); // and never the rest
    });
    const ac = new AbortController();
    const stream = await client().getBlob(src(reg.endpoint), blobDigest, anon, ac.signal);
    const reading = readAll(stream);
    setTimeout(() => {
      ac.abort();
    }, 50);
    await expectError(reading, CanceledError);
  });

  it('a blob stream ends with UnavailableError when the connection breaks', async () => {
    const reg = await serve((req, res) => {
      res.writeHead(200, { 'content-length': String(blob.length * 2) });
      res.write(blob, () => {
        res.destroy();
      });
    });
    const stream = await client().getBlob(src(reg.endpoint), blobDigest, anon, never);
    await expectError(readAll(stream), UnavailableError, /while fetching blob/);
  });

  it('destroying the stream early releases the request', async () => {
    const reg = await serve((req, res) => {
      res.writeHead(200);
      res.write(blob);
    });
    const stream = await client().getBlob(src(reg.endpoint), blobDigest, anon, never);
    await once(stream, 'readable');
    stream.destroy();
    await once(stream, 'close');
  });
});

describe('RegistryClient: insecure https', () => {
  it('talks https without verifying the certificate only for an insecure source', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'crisp-tls-'));
    try {
      await promisify(execFile)('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ]);
    } catch {
      t.skip('openssl is not available');
      await rm(dir, { recursive: true, force: true });
      return;
    }
    const server = createHttpsServer({
      key: await readFile(join(dir, 'key.pem')),
      cert: await readFile(join(dir, 'cert.pem')),
    });
    await rm(dir, { recursive: true, force: true });
    const reg = await serve((req, res) => {
      serveManifest(res);
    }, server);
    const got = await client().getManifest(src(reg.endpoint, 'x', true), 'latest', anon, never);
    assert.equal(got.digest, manifestDigest);
    await expectError(
      client().getManifest(src(reg.endpoint, 'x', false), 'latest', anon, never),
      UnavailableError,
      /TLS with registry .* failed \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED|UNABLE_TO_VERIFY)/,
    );
  });
});
