/**
 * A real registry server for the e2e tests: Debian's docker-registry (distribution 2.8) on
 * 127.0.0.1 and a free port, storing into a temp dir, optionally behind htpasswd basic auth.
 * Images are pushed with the distribution v2 HTTP API (our own small client over fetch), and a
 * stored blob can be overwritten on disk to make the registry serve wrong bytes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../../../src/util/command.js';
import {
  digestHex,
  isIndexMediaType,
  openBlobData,
  sha256,
  type ImageIndex,
  type ImageManifest,
  type OciLayout,
} from './oci-layout.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface StartRegistryOptions {
  /** Require HTTP basic auth with these credentials (htpasswd, bcrypt). */
  htpasswd?: RegistryCredentials;
  /** How long to wait for `GET /v2/` to answer; default 15 s. */
  timeoutMs?: number;
}

export interface PushOptions {
  /** Default: the registry's own htpasswd credentials, if it has them. */
  credentials?: RegistryCredentials;
}

export interface TestRegistry {
  /** "127.0.0.1:PORT", as an image reference names it. */
  readonly host: string;
  /** "http://127.0.0.1:PORT" */
  readonly url: string;
  /** The credentials it requires, if started with htpasswd. */
  readonly credentials: RegistryCredentials | undefined;
  readonly pid: number;
  /** The registry's storage root (filesystem driver rootdirectory). */
  readonly storageDir: string;
  /**
   * Pushes `layout` as `repo:tag`: blobs (HEAD, then POST + monolithic PUT), child manifests
   * of an index by digest, then the top document by tag. Returns the digest the registry
   * reports for it (checked against the layout's).
   */
  push(repo: string, tag: string, layout: OciLayout, opts?: PushOptions): Promise<{ manifestDigest: string }>;
  /** Where the registry keeps the bytes of `digest` (blob or manifest). */
  blobPath(digest: string): string;
  /** Overwrites the stored bytes of `digest` so the registry serves `bytes` under that digest. */
  corruptBlob(digest: string, bytes: Buffer): Promise<void>;
  /** What the registry wrote to stdout/stderr (the tail). */
  output(): string;
  /** Kills the registry (SIGTERM, then SIGKILL), waits for it to exit, removes its temp dir. */
  stop(): Promise<void>;
}

/** A port the kernel says is free right now (bind 127.0.0.1:0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => {
        if (port > 0) resolve(port);
        else reject(new Error('could not find a free port'));
      });
    });
  });
}

export function basicAuth(c: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

const OUTPUT_TAIL = 64 * 1024;

class RunningRegistry implements TestRegistry {
  readonly host: string;
  readonly url: string;
  readonly storageDir: string;
  private out = '';
  private readonly exited: Promise<void>;
  private exitInfo: string | undefined;
  private stopped: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    readonly port: number,
    readonly credentials: RegistryCredentials | undefined,
    private readonly readyToken: string,
    private readonly child: ChildProcess,
  ) {
    this.host = `127.0.0.1:${port}`;
    this.url = `http://${this.host}`;
    this.storageDir = join(dir, 'storage');
    const collect = (d: Buffer): void => {
      this.out = (this.out + d.toString()).slice(-OUTPUT_TAIL);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = signal ?? `code ${String(code)}`;
        resolve();
      });
      child.once('error', (err) => {
        this.exitInfo = `spawn error: ${err.message}`;
        resolve();
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('docker-registry has no pid');
    return this.child.pid;
  }

  output(): string {
    return this.out;
  }

  /** Polls GET /v2/ until this registry (not some other server on the port) answers. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exitInfo !== undefined)
        throw new Error(`docker-registry exited (${this.exitInfo}) before it was ready:\n${this.out}`);
      try {
        const res = await fetch(`${this.url}/v2/`, { signal: AbortSignal.timeout(1_000) });
        await res.arrayBuffer();
        const ours = res.headers.get('x-crisp-test-registry') === this.readyToken;
        if (ours && (res.status === 200 || (this.credentials !== undefined && res.status === 401))) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline)
        throw new Error(`docker-registry not ready on ${this.host} after ${timeoutMs} ms:\n${this.out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      if (this.exitInfo === undefined && this.child.pid !== undefined) {
        this.child.kill('SIGTERM');
        const gone = await Promise.race([
          this.exited.then(() => true),
          new Promise<boolean>((r) => {
            setTimeout(() => {
              r(false);
            }, 5_000).unref();
          }),
        ]);
        if (!gone) {
          this.child.kill('SIGKILL');
          await this.exited;
        }
      }
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.stopped;
  }

  blobPath(digest: string): string {
    const hex = digestHex(digest);
    return join(this.storageDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
  }

  async corruptBlob(digest: string, bytes: Buffer): Promise<void> {
    const path = this.blobPath(digest);
    await stat(path); // must already be stored
    await writeFile(path, bytes);
  }

  async push(
    repo: string,
    tag: string,
    layout: OciLayout,
    opts: PushOptions = {},
  ): Promise<{ manifestDigest: string }> {
    const creds = opts.credentials ?? this.credentials;
    const auth: Record<string, string> = creds ? { authorization: basicAuth(creds) } : {};
    await this.pushReferenced(repo, layout.mediaType, layout.bytes, layout, auth);
    const manifestDigest = await this.putManifest(repo, tag, layout.mediaType, layout.bytes, auth);
    return { manifestDigest };
  }

  /** Pushes what a manifest or index refers to (blobs; child manifests by digest). */
  private async pushReferenced(
    repo: string,
    mediaType: string,
    bytes: Buffer,
    layout: OciLayout,
    auth: Record<string, string>,
  ): Promise<void> {
    if (isIndexMediaType(mediaType)) {
      const index = JSON.parse(bytes.toString()) as ImageIndex;
      for (const m of index.manifests) {
        const child = await layout.readBlob(m.digest);
        await this.pushReferenced(repo, m.mediaType, child, layout, auth);
        await this.putManifest(repo, m.digest, m.mediaType, child, auth);
      }
      return;
    }
    const manifest = JSON.parse(bytes.toString()) as ImageManifest;
    for (const d of [manifest.config, ...manifest.layers]) await this.pushBlob(repo, d.digest, layout, auth);
  }

  private async pushBlob(
    repo: string,
    digest: string,
    layout: OciLayout,
    auth: Record<string, string>,
  ): Promise<void> {
    const head = await fetch(`${this.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD', headers: auth });
    if (head.status === 200) return;
    if (head.status !== 404) throw await httpError(`HEAD blob ${digest}`, head);
    const post = await fetch(`${this.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth });
    if (post.status !== 202) throw await httpError(`POST upload for ${digest}`, post);
    await post.arrayBuffer();
    const location = post.headers.get('location');
    if (!location) throw new Error(`POST upload for ${digest}: no Location`);
    const put = new URL(location, this.url);
    put.searchParams.set('digest', digest);
    const blob = layout.blob(digest);
    const res = await fetch(put, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
      body: 'bytes' in blob.data ? blob.data.bytes : openBlobData(blob.data),
      duplex: 'half',
    });
    if (res.status !== 201) throw await httpError(`PUT blob ${digest}`, res);
    await res.arrayBuffer();
  }

  private async putManifest(
    repo: string,
    reference: string,
    mediaType: string,
    bytes: Buffer,
    auth: Record<string, string>,
  ): Promise<string> {
    const res = await fetch(`${this.url}/v2/${repo}/manifests/${reference}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': mediaType },
      body: bytes,
    });
    if (res.status !== 201) throw await httpError(`PUT manifest ${repo}:${reference}`, res);
    await res.arrayBuffer();
    const digest = sha256(bytes);
    const reported = res.headers.get('docker-content-digest');
    if (reported !== digest)
      throw new Error(
        `PUT manifest ${repo}:${reference}: registry says ${String(reported)}, expected ${digest}`,
      );
    return digest;
  }
}

async function httpError(what: string, res: Response): Promise<Error> {
  const body = await res.text().catch(() => '');
  return new Error(`${what}: HTTP ${res.status} ${body.slice(0, 500)}`);
}

function registryConfig(dir: string, port: number, token: string, htpasswdFile: string | undefined): string {
  const q = (s: string): string => JSON.stringify(s); // a JSON string is a YAML string
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  formatter: text',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${q(join(dir, 'storage'))}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${q(`127.0.0.1:${port}`)}`,
    `  secret: ${q(token)}`,
    '  headers:',
    '    X-Content-Type-Options: [nosniff]',
    `    X-Crisp-Test-Registry: [${q(token)}]`,
    ...(htpasswdFile === undefined
      ? []
      : ['auth:', '  htpasswd:', '    realm: crisp-test-registry', `    path: ${q(htpasswdFile)}`]),
    '',
  ].join('\n');
}

/**
 * Starts docker-registry on 127.0.0.1 and a free port (retrying on a port race) and waits until
 * it answers `GET /v2/` (200, or 401 with auth). Always `stop()` it.
 */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'crisp-registry-'));
  try {
    await mkdir(join(dir, 'storage'));
    let htpasswdFile: string | undefined;
    if (opts.htpasswd) {
      const { stdout } = await runCommand('htpasswd', [
        '-Bbn',
        opts.htpasswd.username,
        opts.htpasswd.password,
      ]);
      htpasswdFile = join(dir, 'htpasswd');
      await writeFile(htpasswdFile, `${stdout.trim()}\n`, { mode: 0o600 });
    }
    const configFile = join(dir, 'config.yml');
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const token = randomBytes(8).toString('hex');
      await writeFile(configFile, registryConfig(dir, port, token, htpasswdFile));
      const child = spawn(REGISTRY_BIN, ['serve', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      const reg = new RunningRegistry(dir, port, opts.htpasswd, token, child);
      try {
        await reg.waitReady(opts.timeoutMs ?? 15_000);
        return reg;
      } catch (err) {
        lastError = err;
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await new Promise((r) => child.once('exit', r));
        }
        if (!/address already in use/i.test(reg.output())) break;
      }
    }
    throw lastError instanceof Error ? lastError : new Error('docker-registry did not start');
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
