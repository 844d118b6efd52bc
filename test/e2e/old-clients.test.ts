/**
 * Older gRPC clients (grpc-go before 1.5x: kubelet < 1.26, crictl <= 1.26, CSI sidecars) send
 * the unix socket path or an empty string as HTTP/2 :authority, which Node's HTTP/2 stack
 * rejects. crisp repairs those header blocks; this test speaks raw HTTP/2 to the real daemon
 * the way such a client does, several requests per connection so HPACK's dynamic table is used.
 */
import assert from 'node:assert/strict';
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { removeTestDirs, startCrisp, type RunningCrisp } from './harness/daemon.js';

interface GrpcReply {
  status: string | undefined;
  message: string | undefined;
  body: Buffer;
}

/** An empty protobuf message as one gRPC length-prefixed frame. */
const EMPTY_MESSAGE = Buffer.from([0, 0, 0, 0, 0]);

function grpcCall(session: ClientHttp2Session, path: string, authority: string): Promise<GrpcReply> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      ':authority': authority,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': 'grpc-go/1.40.0',
    });
    const chunks: Buffer[] = [];
    let status: string | undefined;
    let message: string | undefined;
    // Status comes in trailers, or in the only HEADERS frame of a trailers-only reply.
    const takeStatus = (h: Record<string, string | string[] | undefined>): void => {
      if (h['grpc-status'] === undefined) return;
      status = String(h['grpc-status']);
      message = h['grpc-message'] === undefined ? undefined : decodeURIComponent(String(h['grpc-message']));
    };
    req.on('response', takeStatus);
    req.on('trailers', takeStatus);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', reject);
    req.on('close', () => {
      if (req.rstCode !== 0) reject(new Error(`stream reset with code ${req.rstCode}`));
      else resolve({ status, message, body: Buffer.concat(chunks) });
    });
    req.end(EMPTY_MESSAGE);
  });
}

function openSession(socket: string): ClientHttp2Session {
  return http2Connect('http://localhost', { createConnection: () => netConnect(socket) });
}

describe('clients that send an invalid :authority', () => {
  let crisp: RunningCrisp;

  before(async () => {
    crisp = await startCrisp();
  });

  after(async () => {
    await crisp.stop();
    await removeTestDirs(crisp.dirs);
  });

  for (const kind of ['the socket path', 'empty'] as const) {
    it(`answers when :authority is ${kind}, many calls per connection`, async () => {
      const session = openSession(crisp.dirs.socket);
      try {
        const value = kind === 'empty' ? '' : crisp.dirs.socket;
        for (let i = 0; i < 5; i++) {
          const reply = await grpcCall(session, '/runtime.v1.RuntimeService/Version', value);
          assert.equal(reply.status, '0');
          // The reply is a gRPC frame holding VersionResponse; its strings include "crisp".
          assert.ok(reply.body.includes(Buffer.from('crisp')), 'VersionResponse names crisp');
          // An error status travels back too: an empty request lacks the required container_id.
          const err = await grpcCall(session, '/runtime.v1.RuntimeService/CheckpointContainer', value);
          assert.equal(err.status, '3'); // INVALID_ARGUMENT
          assert.match(decodeURIComponent(err.message ?? ''), /container_id/);
        }
      } finally {
        session.close();
      }
    });
  }

  it('keeps working when a connection switches from a valid to an invalid authority', async () => {
    const session = openSession(crisp.dirs.socket);
    try {
      assert.equal((await grpcCall(session, '/runtime.v1.RuntimeService/Version', 'localhost')).status, '0');
      assert.equal(
        (await grpcCall(session, '/runtime.v1.RuntimeService/Version', crisp.dirs.socket)).status,
        '0',
      );
      assert.equal((await grpcCall(session, '/runtime.v1.RuntimeService/Version', 'localhost')).status, '0');
    } finally {
      session.close();
    }
  });

  it('counts the repairs in crisp_grpc_authority_repairs_total', async () => {
    const text = await (await fetch(`${crisp.metricsUrl}/metrics`)).text();
    const m = /^crisp_grpc_authority_repairs_total (\d+)$/m.exec(text);
    assert.ok(m?.[1], 'metric present');
    assert.ok(Number(m[1]) >= 21, `repairs counted: ${m[1]}`);
  });
});
