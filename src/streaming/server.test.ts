import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { ExecSession } from '../container/manager.js';
import { StreamingServer, type StreamingDeps } from './server.js';

const log = pino({ level: 'silent' });

/** A container engine with one running container `c1` whose exec prints its argv and exits 0. */
function fakeDeps(): StreamingDeps {
  const container = { config: { id: 'c1', stdin: false } };
  return {
    log,
    containers: {
      checkStreamable: (id: string) => {
        if (id !== 'c1') return Promise.reject(new NotFoundError('container', id));
        return Promise.resolve(container as never);
      },
      execStream: (_id: string, cmd: string[]) => {
        const stdout = new PassThrough();
        const stderr = new PassThrough();
        stdout.end(cmd.join(' '));
        stderr.end();
        const session: ExecSession = {
          stdout,
          stderr,
          stdin: undefined,
          pid: 1,
          exit: Promise.resolve(0),
          ended: Promise.resolve({}),
          connected: Promise.resolve(),
          detach: () => undefined,
          kill: () => undefined,
          resize: () => Promise.resolve(),
        };
        return Promise.resolve(session);
      },
      attach: () => Promise.reject(new FailedPreconditionError('not in this test')),
    },
    sandboxes: {
      requireReady: (id: string) =>
        id === 'p1'
          ? Promise.resolve({ config: { id: 'p1' } } as never)
          : Promise.reject(new NotFoundError('pod sandbox', id)),
      dialPort: () => Promise.reject(new Error('no dialing here')),
    },
  };
}

const execReq = {
  containerId: 'c1',
  cmd: ['echo', 'hi'],
  tty: false,
  stdin: false,
  stdout: true,
  stderr: true,
};

async function wsExec(
  url: string,
  offers = ['v4.channel.k8s.io'],
): Promise<{ stdout: string; error: string; code: number; protocol: string }> {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), offers, { rejectUnauthorized: false });
  let protocol = '';
  ws.on('open', () => {
    protocol = ws.protocol;
  });
  let stdout = '';
  let error = '';
  ws.on('message', (raw: Buffer) => {
    if (raw[0] === 1) stdout += raw.subarray(1).toString();
    if (raw[0] === 3) error += raw.subarray(1).toString();
  });
  const code = await new Promise<number>((resolve, reject) => {
    ws.on('close', resolve);
    ws.on('error', reject);
  });
  return { stdout, error, code, protocol };
}

describe('StreamingServer', () => {
  let server: StreamingServer;
  let deps: ReturnType<typeof fakeDeps>;
  before(async () => {
    deps = fakeDeps();
    server = new StreamingServer(deps, { address: '127.0.0.1', port: 0, tokenTtlMs: 500 });
    await server.start();
  });
  after(async () => {
    await server.close();
  });

  it('validates before handing out a URL', async () => {
    await assert.rejects(server.execUrl({ ...execReq, cmd: [] }), InvalidArgumentError);
    await assert.rejects(server.execUrl({ ...execReq, tty: true, stderr: true }), /tty/);
    await assert.rejects(server.execUrl({ ...execReq, stdout: false, stderr: false }), /at least one/);
    await assert.rejects(server.execUrl({ ...execReq, containerId: 'nope' }), NotFoundError);
    // stdin on a container made without it is accepted (its input is dropped), as the anchors do.
    assert.match(await server.attachUrl({ ...execReq, stdin: true }), /\/attach\//);
    // Ports are checked when a stream dials them, not here (as in containerd and CRI-O).
    assert.match(await server.portForwardUrl({ podSandboxId: 'p1', ports: [0] }), /\/portforward\//);
    await assert.rejects(server.portForwardUrl({ podSandboxId: 'p2', ports: [80] }), NotFoundError);
    assert.match(await server.portForwardUrl({ podSandboxId: 'p1', ports: [80] }), /\/portforward\//);
  });

  it('runs a WebSocket exec once per token; a second use and a wrong route get 404', async () => {
    const url = await server.execUrl(execReq);
    const res = await wsExec(url);
    assert.equal(res.stdout, 'echo hi');
    assert.deepEqual(JSON.parse(res.error), { metadata: {}, status: 'Success' });
    assert.equal(res.code, 1000);
    await assert.rejects(wsExec(url), /404/);
    const other = await server.execUrl(execReq);
    await assert.rejects(wsExec(other.replace('/exec/', '/attach/')), /404/);
  });

  it('answers the WebSocket subprotocol it speaks, not the client’s first offer', async () => {
    const res = await wsExec(await server.execUrl(execReq), ['v99.channel.k8s.io', 'v4.channel.k8s.io']);
    assert.equal(res.protocol, 'v4.channel.k8s.io');
    assert.equal(res.stdout, 'echo hi');
  });

  it('lets a token expire', async () => {
    const url = await server.execUrl(execReq);
    await new Promise((r) => setTimeout(r, 600));
    await assert.rejects(wsExec(url), /404/);
  });

  it('answers plain requests and unknown paths without an upgrade', async () => {
    const url = await server.execUrl(execReq);
    assert.equal((await fetch(url)).status, 400);
    assert.equal((await fetch(new URL('/metrics', url))).status, 404);
    // The plain request did not use up the token.
    assert.equal((await wsExec(url)).stdout, 'echo hi');
  });

  it('refuses a websocket subprotocol it does not speak, naming the ones it does', async () => {
    const url = await server.execUrl(execReq);
    const ws = new WebSocket(url.replace(/^http/, 'ws'), ['v9.channel.k8s.io']);
    const status = await new Promise<number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
      });
      ws.on('error', () => undefined);
    });
    assert.equal(status, 400);
  });
});

describe('StreamingServer over TLS', () => {
  let dir: string;
  let server: StreamingServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crisp-stream-tls-'));
    // prettier-ignore
    await promisify(execFile)('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ]);
    server = new StreamingServer(fakeDeps(), {
      address: '127.0.0.1',
      port: 0,
      tlsCertFile: join(dir, 'cert.pem'),
      tlsKeyFile: join(dir, 'key.pem'),
    });
    await server.start();
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('hands out https URLs and serves sessions over TLS', async () => {
    const url = await server.execUrl(execReq);
    assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/exec\//);
    const res = await wsExec(url);
    assert.equal(res.stdout, 'echo hi');
    const plain = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(url, { rejectUnauthorized: false }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(plain, 400);
  });
});
