import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  FLAG_FIN,
  FrameDecoder,
  encodeDataFrame,
  encodeFrame,
  encodeGoAway,
  encodePing,
  encodeRstStream,
  encodeSynStream,
  type SpdyFrame,
} from './frames.js';
import { HeaderCompressor, HeaderDecompressor } from './header-block.js';
import {
  RstStatus,
  SpdyProtocolError,
  SpdySession,
  SpdySessionClosedError,
  SpdyStream,
  SpdyStreamResetError,
  type SpdySessionOptions,
} from './session.js';

/** A connected TCP socket pair on 127.0.0.1, closed when the test ends. */
async function socketPair(t: TestContext): Promise<{ serverSocket: net.Socket; clientSocket: net.Socket }> {
  const listener = net.createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const address = listener.address() as net.AddressInfo;
  const accepted = once(listener, 'connection') as Promise<[net.Socket]>;
  const clientSocket = net.connect(address.port, '127.0.0.1');
  const [serverSocket] = await accepted;
  await once(clientSocket, 'connect').catch(() => undefined);
  t.after(() => {
    serverSocket.destroy();
    clientSocket.destroy();
    listener.close();
  });
  return { serverSocket, clientSocket };
}

interface SessionPair {
  server: SpdySession;
  client: SpdySession;
  serverSocket: net.Socket;
  clientSocket: net.Socket;
  serverClosed: Promise<Error | undefined>;
  clientClosed: Promise<Error | undefined>;
}

function closedPromise(session: SpdySession): Promise<Error | undefined> {
  return new Promise((resolve) => {
    session.once('close', (err) => {
      resolve(err);
    });
  });
}

async function sessionPair(
  t: TestContext,
  serverOpts: Partial<SpdySessionOptions> = {},
  clientOpts: Partial<SpdySessionOptions> = {},
): Promise<SessionPair> {
  const { serverSocket, clientSocket } = await socketPair(t);
  const server = new SpdySession(serverSocket, { ...serverOpts, isServer: true });
  const client = new SpdySession(clientSocket, { ...clientOpts, isServer: false });
  const serverClosed = closedPromise(server);
  const clientClosed = closedPromise(client);
  t.after(() => {
    server.destroy();
    client.destroy();
  });
  return { server, client, serverSocket, clientSocket, serverClosed, clientClosed };
}

/**
 * Reads a stream to its end. Not `for await`: a stream's async iterator destroys the whole Duplex
 * when the readable side ends, which would reset the stream before this side is done writing.
 */
function readAll(stream: SpdyStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => {
      resolve(Buffer.concat(chunks));
    });
    stream.once('close', () => {
      if (!stream.readableEnded) reject(new Error(`stream ${stream.id} closed before its end`));
    });
  });
}

/** Resolves once the stream has emitted 'close' (now or earlier). */
async function streamClosed(stream: SpdyStream): Promise<void> {
  if (!stream.closed) await once(stream, 'close');
}

function nextStream(session: SpdySession): Promise<SpdyStream> {
  return new Promise((resolve) => session.once('stream', resolve));
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

async function writeAll(stream: SpdyStream, data: Buffer, chunkSize = 64 * 1024): Promise<void> {
  for (let off = 0; off < data.length; off += chunkSize) {
    if (!stream.write(data.subarray(off, off + chunkSize))) await once(stream, 'drain');
  }
  stream.end();
  await once(stream, 'finish');
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    sleep(ms, undefined, { ref: false }).then(() => {
      throw new Error(`timed out waiting for ${what}`);
    }),
  ]);
}

/**
 * A hand-driven SPDY peer on a raw socket, for sending what SpdySession never would. It keeps
 * its own compression contexts and inflates every header block it receives, in order.
 */
class RawPeer {
  readonly frames: SpdyFrame[] = [];
  readonly headers = new Map<SpdyFrame, Promise<Record<string, string>>>();
  readonly deflate = new HeaderCompressor();
  private readonly inflate = new HeaderDecompressor();
  private readonly decoder = new FrameDecoder();
  private wake: (() => void) | undefined;
  ended = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.decoder.push(chunk)) {
        this.frames.push(f);
        if (f.type === 'syn_reply' || f.type === 'syn_stream' || f.type === 'headers') {
          const p = this.inflate.decompress(f.headerBlock);
          p.catch(() => undefined);
          this.headers.set(f, p);
        }
      }
      this.wake?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  async synStream(streamId: number, headers: Record<string, string>, flags = 0): Promise<Buffer> {
    const headerBlock = await this.deflate.compress(headers);
    return encodeSynStream({ streamId, associatedStreamId: 0, priority: 0, slot: 0, flags, headerBlock });
  }

  async waitFor<F extends SpdyFrame>(pred: (f: SpdyFrame) => f is F, what: string, ms = 2000): Promise<F> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.frames.find(pred);
      if (found) return found;
      if (this.ended) throw new Error(`connection closed before ${what}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50).unref();
      });
    }
  }

  async waitClosed(ms = 2000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the connection to close');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50).unref();
      });
    }
  }

  close(): void {
    this.deflate.close();
    this.inflate.close();
    this.socket.destroy();
  }
}

/** A server session facing a RawPeer. */
async function rawPair(
  t: TestContext,
  serverOpts: Partial<SpdySessionOptions> = {},
): Promise<{
  server: SpdySession;
  peer: RawPeer;
  serverClosed: Promise<Error | undefined>;
  serverSocket: net.Socket;
}> {
  const { serverSocket, clientSocket } = await socketPair(t);
  const server = new SpdySession(serverSocket, { ...serverOpts, isServer: true });
  const serverClosed = closedPromise(server);
  const peer = new RawPeer(clientSocket);
  t.after(() => {
    server.destroy();
    peer.close();
  });
  return { server, peer, serverClosed, serverSocket };
}

const isGoAway = (f: SpdyFrame): f is Extract<SpdyFrame, { type: 'goaway' }> => f.type === 'goaway';
const isRst = (f: SpdyFrame): f is Extract<SpdyFrame, { type: 'rst_stream' }> => f.type === 'rst_stream';
const isPing = (f: SpdyFrame): f is Extract<SpdyFrame, { type: 'ping' }> => f.type === 'ping';
const isSynReply = (f: SpdyFrame): f is Extract<SpdyFrame, { type: 'syn_reply' }> => f.type === 'syn_reply';

describe('SpdySession between a server and a client', () => {
  it('opens a stream, replies with headers and exchanges data with half-closes both ways', async (t) => {
    const { server, client } = await sessionPair(t);
    const incoming = nextStream(server);
    const opening = client.openStream({ StreamType: 'stdin', Port: '8080', requestID: '0' });
    const serverStream = await incoming;
    assert.equal(serverStream.id, 1);
    assert.equal(serverStream.peerOpened, true);
    assert.deepEqual({ ...serverStream.headers }, { streamtype: 'stdin', port: '8080', requestid: '0' });
    serverStream.accept({ 'X-Reply': 'yes' });
    serverStream.accept({ 'X-Reply': 'again' }); // idempotent
    const clientStream = await opening;
    assert.equal(clientStream.headers['x-reply'], 'yes');

    // Client → server, then FIN; the server's readable ends but it can still write.
    const serverRead = readAll(serverStream);
    clientStream.end('hello ');
    assert.equal((await serverRead).toString(), 'hello ');
    assert.equal(server.activeStreams, 1);

    const clientRead = readAll(clientStream);
    serverStream.write('wor');
    serverStream.end('ld');
    assert.equal((await clientRead).toString(), 'world');
    await Promise.all([streamClosed(serverStream), streamClosed(clientStream)]);
    assert.equal(server.activeStreams, 0);
    assert.equal(client.activeStreams, 0);
    assert.equal(serverStream.resetStatus, undefined);
  });

  it('transfers 10 MB each way intact (no 64 KiB flow-control stall)', async (t) => {
    const { server, client } = await sessionPair(t);
    const up = randomBytes(10 * 1024 * 1024);
    const down = randomBytes(10 * 1024 * 1024);
    const serverGot = new Promise<Buffer>((resolve, reject) => {
      server.once('stream', (s) => {
        s.accept();
        readAll(s).then(resolve, reject);
        void writeAll(s, down);
      });
    });
    const stream = await client.openStream({ streamtype: 'data' });
    const clientGot = readAll(stream);
    await writeAll(stream, up);
    const [got, serverBuf] = await Promise.all([clientGot, serverGot]);
    assert.equal(got.length, down.length);
    assert.equal(sha256(got), sha256(down));
    assert.equal(serverBuf.length, up.length);
    assert.equal(sha256(serverBuf), sha256(up));
  });

  it('lets the server write before accept(): the reply is sent first', async (t) => {
    const { server, client } = await sessionPair(t);
    server.once('stream', (s) => {
      s.end('early');
    });
    const stream = await client.openStream({ streamtype: 'stdout' }, { fin: true });
    assert.equal((await readAll(stream)).toString(), 'early');
  });

  it('opens a stream with FIN in the SYN_STREAM', async (t) => {
    const { server, client } = await sessionPair(t);
    const incoming = nextStream(server);
    const opening = client.openStream({ streamtype: 'error' }, { fin: true });
    const serverStream = await incoming;
    assert.equal((await readAll(serverStream)).length, 0, 'readable ends at once');
    serverStream.end('status');
    const clientStream = await opening;
    assert.equal(clientStream.writableEnded, true);
    assert.equal((await readAll(clientStream)).toString(), 'status');
    await streamClosed(clientStream);
    assert.equal(client.activeStreams, 0);
  });

  it('propagates a client RST to the server stream without an error', async (t) => {
    const { server, client } = await sessionPair(t);
    const incoming = nextStream(server);
    const opening = client.openStream({ streamtype: 'stdin' });
    const serverStream = await incoming;
    serverStream.accept();
    const clientStream = await opening;
    const reset = once(serverStream, 'reset') as Promise<[number]>;
    const closed = once(serverStream, 'close');
    clientStream.reset();
    assert.deepEqual(await reset, [RstStatus.CANCEL]);
    await closed;
    assert.equal(serverStream.destroyed, true);
    assert.equal(serverStream.resetStatus, RstStatus.CANCEL);
    assert.equal(clientStream.destroyed, true);
    await withTimeout(
      (async () => {
        while (server.activeStreams !== 0) await sleep(5);
      })(),
      1000,
      'the server to drop the stream',
    );
    // The session is still usable.
    assert.equal(typeof (await client.ping()), 'number');
  });

  it('rejects openStream when the server resets the new stream', async (t) => {
    const { server, client } = await sessionPair(t);
    server.once('stream', (s) => {
      s.reset(RstStatus.REFUSED_STREAM);
    });
    await assert.rejects(client.openStream({ streamtype: 'bogus' }), (err: unknown) => {
      assert.ok(err instanceof SpdyStreamResetError);
      assert.equal(err.status, RstStatus.REFUSED_STREAM);
      assert.equal(err.streamId, 1);
      return true;
    });
    assert.equal(client.activeStreams, 0);
    assert.equal(server.activeStreams, 0);
  });

  it('destroying a stream locally sends RST CANCEL to the peer', async (t) => {
    const { server, client } = await sessionPair(t);
    const incoming = nextStream(server);
    const opening = client.openStream({ streamtype: 'stdout' });
    const serverStream = await incoming;
    serverStream.accept();
    const clientStream = await opening;
    const reset = once(clientStream, 'reset') as Promise<[number]>;
    serverStream.destroy();
    assert.deepEqual(await reset, [RstStatus.CANCEL]);
  });

  it('rejects a ping that is pending when the session is destroyed', async (t) => {
    const { client, clientClosed } = await sessionPair(t);
    const ping = client.ping(5000);
    client.destroy(new Error('going down'));
    await assert.rejects(ping, SpdySessionClosedError);
    assert.match(String(await clientClosed), /going down/);
  });

  it('answers PINGs in both directions', async (t) => {
    const { server, client } = await sessionPair(t);
    const rtt = await client.ping();
    assert.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt}`);
    const rtt2 = await server.ping();
    assert.ok(rtt2 >= 0 && rtt2 < 1000, `rtt ${rtt2}`);
    const all = await Promise.all([client.ping(), client.ping(), server.ping()]);
    assert.equal(all.length, 3);
  });

  it('carries 200 concurrent streams', async (t) => {
    const { server, client } = await sessionPair(t);
    server.on('stream', (s) => {
      s.accept({ echo: s.headers.requestid ?? '' });
      void readAll(s).then((body) => {
        s.end(`${s.headers.requestid ?? ''}:${body.toString().toUpperCase()}`);
      });
    });
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const s = await client.openStream({ requestID: String(i) });
        assert.equal(s.headers.echo, String(i));
        const reply = readAll(s);
        s.end(`body-${i}`);
        return (await reply).toString();
      }),
    );
    assert.deepEqual(
      results,
      Array.from({ length: 200 }, (_, i) => `${i}:BODY-${i}`),
    );
    await withTimeout(
      (async () => {
        while (server.activeStreams + client.activeStreams !== 0) await sleep(5);
      })(),
      1000,
      'all streams to close',
    );
  });

  it('refuses streams beyond maxStreams with REFUSED_STREAM', async (t) => {
    const { server, client } = await sessionPair(t, { maxStreams: 2 });
    server.on('stream', (s) => {
      s.accept();
    });
    const a = await client.openStream({ n: '1' });
    const b = await client.openStream({ n: '2' });
    await assert.rejects(
      client.openStream({ n: '3' }),
      (err: unknown) => err instanceof SpdyStreamResetError && err.status === RstStatus.REFUSED_STREAM,
    );
    // Closing one frees a slot.
    const serverSide = new Promise<SpdyStream>((resolve) => server.once('stream', resolve));
    a.reset();
    await withTimeout(
      (async () => {
        while (server.activeStreams !== 1) await sleep(5);
      })(),
      1000,
      'the reset to reach the server',
    );
    const c = await client.openStream({ n: '4' });
    assert.equal((await serverSide).headers.n, '4');
    assert.equal(b.destroyed, false);
    assert.equal(c.id, 7);
  });

  it('GOAWAY from the server ends the session cleanly after queued frames', async (t) => {
    const { server, client, serverClosed, clientClosed } = await sessionPair(t);
    const incoming = nextStream(server);
    const opening = client.openStream({ streamtype: 'stdout' }, { fin: true });
    const serverStream = await incoming;
    const goaway = once(client, 'goaway') as Promise<[number, number]>;
    const clientStream = await (serverStream.accept(), opening);
    const body = readAll(clientStream);
    serverStream.end('last words');
    await server.goAway();
    assert.equal(server.closed, false, 'still open until the peer closes');
    assert.deepEqual(await goaway, [1, 0]);
    assert.equal((await body).toString(), 'last words');
    await assert.rejects(client.openStream({}), SpdySessionClosedError);
    // The server ended its side; the client follows, and both sessions close without error.
    assert.equal(await withTimeout(clientClosed, 2000, 'client close'), undefined);
    assert.equal(await withTimeout(serverClosed, 2000, 'server close'), undefined);
    assert.equal(server.closed, true);
    assert.equal(client.closed, true);
  });

  it('a write queued behind GOAWAY fails its callback without emitting an error', async (t) => {
    const { server, client } = await sessionPair(t);
    const incoming = nextStream(server);
    const opening = client.openStream({ streamtype: 'stdout' });
    const serverStream = await incoming;
    serverStream.accept();
    await opening;
    const going = server.goAway();
    // No 'error' listener on purpose: an emitted error would fail the test run.
    const writeErr = await new Promise<Error | null | undefined>((resolve) => {
      serverStream.write('too late', resolve);
    });
    assert.ok(writeErr instanceof SpdySessionClosedError);
    assert.equal(serverStream.destroyed, true);
    await going;
  });

  it('ending the session rejects pending calls and destroys open streams', async (t) => {
    const { server, client, clientClosed } = await sessionPair(t);
    const incoming = nextStream(server); // never replied to
    const opening = client.openStream({ streamtype: 'stdin' });
    const serverStream = await incoming;
    server.destroy();
    assert.equal(serverStream.destroyed, true);
    await assert.rejects(opening, SpdySessionClosedError);
    assert.equal(await clientClosed, undefined);
    assert.equal(client.closed, true);
    await assert.rejects(client.ping(), SpdySessionClosedError);
  });

  it('pauses the socket while incoming data waits for readers, then resumes', async (t) => {
    const { server, client, serverSocket } = await sessionPair(t, { maxBufferedIncoming: 256 * 1024 });
    const incoming = nextStream(server);
    const opening = client.openStream({ streamtype: 'stdin' });
    const serverStream = await incoming;
    serverStream.accept();
    const clientStream = await opening;
    const payload = randomBytes(4 * 1024 * 1024);
    const writing = writeAll(clientStream, payload);
    await withTimeout(
      (async () => {
        while (!serverSocket.isPaused()) await sleep(5);
      })(),
      2000,
      'the server to pause reading',
    );
    assert.ok(serverStream.readableLength > 256 * 1024);
    assert.ok(serverStream.readableLength < payload.length);
    const got = await readAll(serverStream);
    await writing;
    assert.equal(sha256(got), sha256(payload));
    assert.equal(serverSocket.isPaused(), false);
  });
});

describe('SpdySession against a hand-driven peer', () => {
  it('processes upgrade head bytes before later socket data', async (t) => {
    const { serverSocket, clientSocket } = await socketPair(t);
    const peer = new RawPeer(clientSocket);
    t.after(() => {
      peer.close();
    });
    const first = Buffer.concat([
      await peer.synStream(1, { streamtype: 'stdin' }),
      encodeDataFrame(1, 0, Buffer.from('from head|')),
      encodePing(1),
    ]);
    // What an HTTP upgrade handler sees: the request, then SPDY bytes read in the same chunk.
    const request = Buffer.from('POST /exec/x HTTP/1.1\r\n\r\n');
    clientSocket.write(Buffer.concat([request, first]));
    const chunks: Buffer[] = [];
    let total = 0;
    const wanted = request.length + first.length;
    while (total < wanted) {
      const [chunk] = (await withTimeout(once(serverSocket, 'data'), 2000, 'request bytes')) as [Buffer];
      chunks.push(chunk);
      total += chunk.length;
    }
    serverSocket.pause();
    serverSocket.removeAllListeners('data');
    const head = Buffer.concat(chunks).subarray(request.length);

    const server = new SpdySession(serverSocket, { isServer: true, head });
    t.after(() => {
      server.destroy();
    });
    const stream = await nextStream(server);
    assert.equal(stream.headers.streamtype, 'stdin');
    stream.accept({ ok: '1' });
    const body = readAll(stream);
    const reply = await peer.waitFor(isSynReply, 'SYN_REPLY');
    assert.equal(reply.streamId, 1);
    assert.deepEqual({ ...(await peer.headers.get(reply)) }, { ok: '1' });
    assert.equal((await peer.waitFor(isPing, 'PING echo')).id, 1);
    clientSocket.write(encodeDataFrame(1, FLAG_FIN, Buffer.from('from socket')));
    assert.equal((await body).toString(), 'from head|from socket');
  });

  it('ignores SETTINGS, WINDOW_UPDATE and unknown control frames', async (t) => {
    const { peer, server, serverClosed } = await rawPair(t);
    let closed = false;
    void serverClosed.then(() => (closed = true));
    peer.socket.write(
      Buffer.concat([
        encodeFrame({ type: 'settings', flags: 0, entries: [{ id: 7, flags: 0, value: 1 }] }),
        encodeFrame({ type: 'window_update', streamId: 1, delta: 100 }),
        encodeFrame({ type: 'unknown', frameType: 11, flags: 0, payload: Buffer.from([1, 2]) }),
        encodePing(3),
      ]),
    );
    assert.equal((await peer.waitFor(isPing, 'PING echo')).id, 3);
    assert.equal(closed, false);
    assert.equal(server.closed, false);
    assert.ok(!peer.frames.some((f) => f.type === 'settings' || f.type === 'window_update'));
  });

  it('ignores a PING echo it did not ask for', async (t) => {
    const { peer } = await rawPair(t);
    peer.socket.write(Buffer.concat([encodePing(2), encodePing(5)]));
    assert.equal((await peer.waitFor(isPing, 'PING echo')).id, 5);
    assert.deepEqual(
      peer.frames.filter(isPing).map((f) => f.id),
      [5],
    );
  });

  it('answers DATA for an unknown stream with RST INVALID_STREAM and stays up', async (t) => {
    const { peer, server } = await rawPair(t);
    peer.socket.write(Buffer.concat([encodeDataFrame(7, 0, Buffer.from('?')), encodePing(1)]));
    const rst = await peer.waitFor(isRst, 'RST_STREAM');
    assert.equal(rst.streamId, 7);
    assert.equal(rst.status, RstStatus.INVALID_STREAM);
    await peer.waitFor(isPing, 'PING echo');
    assert.equal(server.closed, false);
  });

  it('resets a stream that gets DATA after its FIN', async (t) => {
    const { peer, server } = await rawPair(t);
    const incoming = nextStream(server);
    peer.socket.write(await peer.synStream(1, { streamtype: 'stdin' }, FLAG_FIN));
    const stream = await incoming;
    stream.accept();
    peer.socket.write(encodeDataFrame(1, 0, Buffer.from('late')));
    const rst = await peer.waitFor(isRst, 'RST_STREAM');
    assert.equal(rst.status, RstStatus.STREAM_ALREADY_CLOSED);
    assert.equal(server.closed, false);
  });

  it('does not answer a RST for an unknown stream', async (t) => {
    const { peer } = await rawPair(t);
    peer.socket.write(Buffer.concat([encodeRstStream(9, RstStatus.CANCEL), encodePing(1)]));
    await peer.waitFor(isPing, 'PING echo');
    assert.equal(peer.frames.filter(isRst).length, 0);
  });

  it('refuses peer streams when nobody listens for them', async (t) => {
    const { peer } = await rawPair(t);
    peer.socket.write(await peer.synStream(1, { streamtype: 'stdin' }));
    const rst = await peer.waitFor(isRst, 'RST_STREAM');
    assert.equal(rst.status, RstStatus.REFUSED_STREAM);
  });

  it('ignores new streams after its own GOAWAY but keeps the header context in step', async (t) => {
    const { peer, server } = await rawPair(t);
    const incoming = nextStream(server);
    peer.socket.write(await peer.synStream(1, { streamtype: 'a' }));
    const first = await incoming;
    first.accept();
    let extra = 0;
    server.on('stream', () => extra++);
    const going = server.goAway();
    const goaway = await peer.waitFor(isGoAway, 'GOAWAY');
    assert.equal(goaway.lastGoodStreamId, 1);
    assert.equal(goaway.status, 0);
    peer.socket.write(await peer.synStream(3, { streamtype: 'b' }));
    await going;
    await peer.waitClosed();
    assert.equal(extra, 0);
  });
});

describe('SpdySession protocol errors', () => {
  async function expectSessionError(
    t: TestContext,
    send: (peer: RawPeer) => Promise<void> | void,
    message: RegExp,
  ): Promise<RawPeer> {
    const { peer, server, serverClosed } = await rawPair(t);
    server.on('stream', (s) => {
      s.accept();
    });
    await send(peer);
    const err = await withTimeout(serverClosed, 2000, 'the server session to close');
    assert.ok(err instanceof SpdyProtocolError, `expected SpdyProtocolError, got ${String(err)}`);
    assert.match(err.message, message);
    assert.equal(server.closed, true);
    await peer.waitClosed();
    return peer;
  }

  it('random bytes: GOAWAY PROTOCOL_ERROR and close', async (t) => {
    const garbage = randomBytes(4096);
    garbage[0] = 0xff; // a control frame with version 0x7fff
    garbage[1] = 0xff;
    const peer = await expectSessionError(
      t,
      (p) => {
        p.socket.write(garbage);
      },
      /unsupported SPDY version 32767/,
    );
    const goaway = await peer.waitFor(isGoAway, 'GOAWAY');
    assert.equal(goaway.status, 1);
  });

  it('random bytes followed by end: closes with an error either way', async (t) => {
    await expectSessionError(
      t,
      (p) => {
        p.socket.end(randomBytes(4096));
      },
      /version|exceeds|middle of a frame|length|stream 0/,
    );
  });

  it('wrong version on a well-formed frame', async (t) => {
    const ping = encodePing(1);
    ping.writeUInt16BE(0x8002, 0);
    await expectSessionError(
      t,
      (p) => {
        p.socket.write(ping);
      },
      /unsupported SPDY version 2/,
    );
  });

  it('huge length field: fails on the header, without waiting for the payload', async (t) => {
    await expectSessionError(
      t,
      (p) => {
        p.socket.write(Buffer.from([0x80, 0x03, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff]));
      },
      /exceeds/,
    );
  });

  it('truncated frame then close', async (t) => {
    await expectSessionError(
      t,
      (p) => {
        p.socket.end(encodePing(1).subarray(0, 5));
      },
      /middle of a frame/,
    );
  });

  it('SYN_STREAM with a server-parity (even) id', async (t) => {
    await expectSessionError(
      t,
      async (p) => {
        p.socket.write(await p.synStream(2, { streamtype: 'x' }));
      },
      /even stream id 2/,
    );
  });

  it('SYN_STREAM with a non-increasing id', async (t) => {
    await expectSessionError(
      t,
      async (p) => {
        p.socket.write(Buffer.concat([await p.synStream(5, { a: '1' }), await p.synStream(3, { a: '2' })]));
      },
      /id 3 is not above the previous 5/,
    );
  });

  it('a corrupt header block', async (t) => {
    await expectSessionError(
      t,
      (p) => {
        p.socket.write(
          encodeSynStream({
            streamId: 1,
            associatedStreamId: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headerBlock: Buffer.from('not a zlib stream at all'),
          }),
        );
      },
      /corrupt SPDY header block/,
    );
  });

  it('a client session rejects an odd (client-parity) SYN_STREAM from the server', async (t) => {
    const { serverSocket, clientSocket } = await socketPair(t);
    const client = new SpdySession(clientSocket, { isServer: false });
    const clientClosed = closedPromise(client);
    const peer = new RawPeer(serverSocket);
    t.after(() => {
      client.destroy();
      peer.close();
    });
    serverSocket.write(await peer.synStream(1, { x: 'y' }));
    const err = await withTimeout(clientClosed, 2000, 'client close');
    assert.ok(err instanceof SpdyProtocolError);
    assert.match(err.message, /odd stream id 1/);
    assert.equal((await peer.waitFor(isGoAway, 'GOAWAY')).status, 1);
  });

  it('a throwing stream listener ends only that session, and the server keeps serving', async (t) => {
    const listener = net.createServer();
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    const port = (listener.address() as net.AddressInfo).port;
    const sessions: SpdySession[] = [];
    const closes: Promise<Error | undefined>[] = [];
    listener.on('connection', (socket) => {
      const s = new SpdySession(socket, { isServer: true });
      sessions.push(s);
      closes.push(closedPromise(s));
      s.on('stream', (stream) => {
        if (stream.headers.boom !== undefined) throw new Error('handler bug');
        stream.accept();
        stream.end('fine');
      });
    });
    t.after(() => {
      for (const s of sessions) s.destroy();
      listener.close();
    });

    const bad = new SpdySession(net.connect(port, '127.0.0.1'), { isServer: false });
    const badClosed = closedPromise(bad);
    await assert.rejects(bad.openStream({ boom: '1' }), SpdySessionClosedError);
    await badClosed;
    const err = await closes[0];
    assert.match(String(err), /handler bug/);

    // Garbage on another connection does not disturb the listener either.
    const raw = net.connect(port, '127.0.0.1');
    raw.on('error', () => undefined);
    raw.resume(); // read (and drop) the GOAWAY so that the close is seen
    raw.end(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    await once(raw, 'close');

    const good = new SpdySession(net.connect(port, '127.0.0.1'), { isServer: false });
    t.after(() => {
      good.destroy();
    });
    const stream = await good.openStream({ ok: '1' }, { fin: true });
    assert.equal((await readAll(stream)).toString(), 'fine');
    assert.equal(sessions.length, 3);
    assert.ok((await closes[1]) instanceof SpdyProtocolError);
  });

  it('reports a GOAWAY frame from a raw peer to listeners', async (t) => {
    const { peer, server } = await rawPair(t);
    const goaway = once(server, 'goaway') as Promise<[number, number]>;
    peer.socket.write(encodeGoAway(0, 2));
    assert.deepEqual(await goaway, [0, 2]);
    await assert.rejects(server.openStream({}), SpdySessionClosedError);
  });
});

describe('SpdySession: frames that arrive just before the connection closes', () => {
  it('a SYN_REPLY and GOAWAY right before the close still open the stream', async (t) => {
    const { serverSocket, clientSocket } = await socketPair(t);
    const client = new SpdySession(clientSocket, { isServer: false });
    const compressor = new HeaderCompressor();
    t.after(() => {
      compressor.close();
    });
    const opened = client.openStream({ streamtype: 'stdout' });
    // The peer answers, sends data and goes away in one write, then closes at once: the
    // reply's header block is still being inflated when the socket's close arrives.
    const decoder = new FrameDecoder();
    await new Promise<void>((resolve) => {
      serverSocket.on('data', (chunk: Buffer) => {
        if (decoder.push(chunk).some((f) => f.type === 'syn_stream')) resolve();
      });
    });
    const reply = encodeFrame({
      type: 'syn_reply',
      streamId: 1,
      flags: 0,
      headerBlock: await compressor.compress({ ok: '1' }),
    });
    serverSocket.end(
      Buffer.concat([reply, encodeDataFrame(1, FLAG_FIN, Buffer.from('bye')), encodeGoAway(1, 0)]),
    );
    serverSocket.destroy();
    const stream = await withTimeout(opened, 2_000, 'the stream to open');
    assert.equal(stream.headers.ok, '1');
    // Its unread data goes with the session (see the module header); reading must not throw.
    stream.on('error', () => undefined);
    stream.resume();
  });
});
