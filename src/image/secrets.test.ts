/**
 * Registry credentials never reach the logs or error messages: a whole pull through the image
 * service with a username/password (and with a base64 `auth`), against a registry on 127.0.0.1
 * that hands out bearer tokens, logged at trace level into a buffer. The password, the base64
 * credentials, the Basic header and the bearer token must appear nowhere in that output, nor in
 * the message or details of the error a wrong password gives.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { arch } from 'node:process';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pack } from 'tar-stream';
import { CrispError } from '../errors.js';
import { createLogger } from '../log/logger.js';
import { FakeStateStore } from '../store/fake-state-store.js';
import { ContentStore } from './content-store.js';
import { LayerStore } from './layer-store.js';
import { singleLayerImage } from './local-image.js';
import { computeDigest } from './manifest.js';
import { OCI_MANIFEST } from './media-types.js';
import { parseRegistriesConf } from './registries.js';
import { RegistryClient } from './registry-client.js';
import { ImageService } from './service.js';
import { authConfig } from './auth-fixtures.js';

const USER = 'alice';
const PASSWORD = 'pa55-W0rd-never-logged';
const TOKEN = 'bearer-token-never-logged-0123456789';
const BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

async function layerTar(): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p) chunks.push(c as Buffer);
  })();
  p.entry({ name: 'hello.txt', mode: 0o644, mtime: new Date(0) }, 'hello\n');
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Captures pino's JSON lines. */
class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

function noSecretIn(what: string, text: string): void {
  for (const secret of [PASSWORD, BASIC, TOKEN, `Basic ${BASIC}`]) {
    assert.ok(!text.includes(secret), `${what} contains a secret (${secret.slice(0, 6)}…):\n${text}`);
  }
}

describe('registry credentials stay out of logs and errors', () => {
  let dir: string;
  let server: Server;
  let endpoint: string;
  let service: ImageService;
  const capture = new Capture();
  const blobs = new Map<string, Buffer>();
  let manifest: Buffer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crisp-secrets-'));
    const goArch = arch === 'x64' ? 'amd64' : arch === 'arm64' ? 'arm64' : arch;
    const layer = await layerTar();
    const built = singleLayerImage(layer, { Entrypoint: ['/hello'] }, goArch);
    manifest = built.manifestBytes;
    blobs.set(computeDigest(built.configBytes), built.configBytes);
    blobs.set(built.layer.digest, layer);

    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/token') {
        if (req.headers.authorization !== `Basic ${BASIC}`) {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token: TOKEN, expires_in: 300 }));
        return;
      }
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        res.writeHead(401, {
          'content-type': 'application/json',
          'www-authenticate': `Bearer realm="http://${endpoint}/token",service="fake",scope="repository:team/app:pull"`,
        });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
        return;
      }
      if (url.pathname.startsWith('/v2/team/app/manifests/')) {
        res.writeHead(200, { 'content-type': OCI_MANIFEST });
        res.end(manifest);
        return;
      }
      const blob = blobs.get(url.pathname.replace('/v2/team/app/blobs/', ''));
      if (blob) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(blob);
        return;
      }
      res.writeHead(404);
      res.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    endpoint = `127.0.0.1:${(server.address() as AddressInfo).port}`;

    const log = createLogger({ level: 'trace', format: 'json', stream: capture });
    const policy = parseRegistriesConf(`[[registry]]\nlocation = "${endpoint}"\ninsecure = true\n`, 'test');
    service = new ImageService(
      {
        store: new FakeStateStore(),
        content: new ContentStore(join(dir, 'blobs')),
        layers: new LayerStore(join(dir, 'layers'), { log }),
        client: new RegistryClient({ log, userAgent: 'test', retryBaseMs: 1, retries: 0 }),
        registries: () => Promise.resolve(policy),
        log,
      },
      { authFile: '', pullTimeoutMs: 20_000 },
    );
    await service.init();
  });

  after(async () => {
    server.closeAllConnections();
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a pull with a username and password, then with base64 auth: nothing secret logged', async () => {
    const id = await service.pull(
      `${endpoint}/team/app:v1`,
      authConfig({ username: USER, password: PASSWORD }),
      new AbortController().signal,
    );
    assert.match(id, /^sha256:[0-9a-f]{64}$/);
    await service.remove(id);
    await service.pull(`${endpoint}/team/app:v1`, authConfig({ auth: BASIC }), new AbortController().signal);
    assert.match(capture.text, /pulled image/, 'the pull was logged at all');
    assert.match(capture.text, /bearer token/, 'the token exchange was logged at all');
    noSecretIn('the log', capture.text);
  });

  it('a wrong password: the error and the log name the registry, not the secrets', async () => {
    const wrong = `${PASSWORD}-but-wrong`;
    const err = await service
      .pull(
        `${endpoint}/team/app:v2`,
        authConfig({ username: USER, password: wrong }),
        new AbortController().signal,
      )
      .then(
        () => assert.fail('the pull succeeded'),
        (e: unknown) => e,
      );
    assert.ok(err instanceof CrispError, String(err));
    assert.equal(err.code, 'UNAUTHENTICATED');
    const shown = `${err.message}\n${JSON.stringify(err.details)}\n${String(err.cause)}`;
    noSecretIn('the error', shown);
    assert.ok(!shown.includes(wrong), 'the wrong password is not echoed');
    assert.ok(!capture.text.includes(wrong), 'nor logged');
    noSecretIn('the log', capture.text);
  });

  it('the logger redacts secret keys whoever logs them', () => {
    const out = new Capture();
    const log = createLogger({ level: 'info', format: 'json', stream: out });
    log.info(
      {
        password: PASSWORD,
        auth: { password: PASSWORD, auth: BASIC, identity_token: TOKEN },
        headers: { authorization: `Basic ${BASIC}` },
        req: { headers: { authorization: `Bearer ${TOKEN}` } },
        token: TOKEN,
        registry_token: TOKEN,
      },
      'careless',
    );
    assert.match(out.text, /careless/);
    assert.match(out.text, /\[redacted\]/);
    noSecretIn('a careless log line', out.text);
  });
});
