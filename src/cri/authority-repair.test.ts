import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import hpack from 'hpack.js';
import { HeaderBlockRepairer, isValidAuthority } from './authority-repair.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

function parseFrames(bytes: Buffer): Frame[] {
  const frames: Frame[] = [];
  let rest = bytes;
  while (rest.length >= 9) {
    const len = rest.readUIntBE(0, 3);
    frames.push({
      type: rest[3] ?? -1,
      flags: rest[4] ?? -1,
      streamId: rest.readUInt32BE(5),
      payload: rest.subarray(9, 9 + len),
    });
    rest = rest.subarray(9 + len);
  }
  assert.equal(rest.length, 0, 'no trailing partial frame');
  return frames;
}

/** A client-side encoder with a dynamic table, like grpc-go's. */
function clientEncoder(): (headers: [string, string][]) => Buffer {
  const enc = hpack.compressor.create({ table: { maxSize: 4096 } });
  return (headers) => {
    enc.write(headers.map(([name, value]) => ({ name, value })));
    const out: Buffer[] = [];
    for (let b = enc.read(); b !== null; b = enc.read()) out.push(b);
    return Buffer.concat(out);
  };
}

/** The server side: decodes the repaired blocks with its own table. */
function serverDecoder(): (block: Buffer) => Record<string, string> {
  const dec = hpack.decompressor.create({ table: { maxSize: 4096 } });
  return (block) => {
    dec.write(block);
    dec.execute();
    const out: Record<string, string> = {};
    for (let h = dec.read(); h !== null; h = dec.read()) out[h.name] = h.value;
    return out;
  };
}

const request = (authority: string): [string, string][] => [
  [':method', 'POST'],
  [':scheme', 'http'],
  [':path', '/runtime.v1.RuntimeService/Version'],
  [':authority', authority],
  ['content-type', 'application/grpc'],
  ['te', 'trailers'],
];

describe('authority repair', () => {
  it('knows valid authorities from invalid ones', () => {
    assert.equal(isValidAuthority('localhost'), true);
    assert.equal(isValidAuthority('127.0.0.1:9000'), true);
    assert.equal(isValidAuthority('[::1]:80'), true);
    assert.equal(isValidAuthority(''), false);
    assert.equal(isValidAuthority('/run/crisp/crisp.sock'), false);
    assert.equal(isValidAuthority('a b'), false);
  });

  it('passes a connection with valid authorities through byte for byte', () => {
    const encode = clientEncoder();
    const input = Buffer.concat([
      PREFACE,
      frame(0x4, 0, 0, Buffer.alloc(0)), // SETTINGS
      frame(0x1, 0x4, 1, encode(request('localhost'))),
      frame(0x0, 0x1, 1, Buffer.from([0, 0, 0, 0, 0])),
      frame(0x1, 0x4, 3, encode(request('localhost'))),
    ]);
    const r = new HeaderBlockRepairer();
    assert.deepEqual(r.push(input), input);
    assert.equal(r.repaired, 0);
  });

  it('replaces a socket-path authority, across chunk boundaries, keeping the dynamic table consistent', () => {
    const encode = clientEncoder();
    const decode = serverDecoder();
    const bad = '/run/crisp/crisp.sock';
    const input = Buffer.concat([
      PREFACE,
      frame(0x1, 0x4 | 0x1, 1, encode(request(bad))),
      frame(0x1, 0x4 | 0x1, 3, encode(request(bad))), // refers to dynamic-table entries now
      frame(0x1, 0x4 | 0x1, 5, encode(request('localhost'))),
    ]);
    const r = new HeaderBlockRepairer();
    // Feed it in 7-byte pieces: frames straddle chunks.
    const out: Buffer[] = [];
    for (let i = 0; i < input.length; i += 7) out.push(r.push(input.subarray(i, i + 7)));
    const bytes = Buffer.concat(out);
    assert.deepEqual(bytes.subarray(0, PREFACE.length), PREFACE);
    const frames = parseFrames(bytes.subarray(PREFACE.length));
    assert.deepEqual(
      frames.map((f) => [f.type, f.flags, f.streamId]),
      [
        [0x1, 0x5, 1],
        [0x1, 0x5, 3],
        [0x1, 0x5, 5],
      ],
    );
    for (const f of frames) {
      const headers = decode(f.payload);
      assert.equal(headers[':authority'], 'localhost');
      assert.equal(headers[':path'], '/runtime.v1.RuntimeService/Version');
      assert.equal(headers.te, 'trailers');
    }
    assert.equal(r.repaired, 2);
  });

  it('handles padded and prioritised HEADERS split over CONTINUATION frames', () => {
    const encode = clientEncoder();
    const decode = serverDecoder();
    const block = encode([...request(''), ['x-big', 'v'.repeat(20_000)]]);
    const priority = Buffer.from([0, 0, 0, 0, 15]);
    const padLength = 3;
    const firstPart = block.subarray(0, 100);
    const headersPayload = Buffer.concat([
      Buffer.from([padLength]),
      priority,
      firstPart,
      Buffer.alloc(padLength),
    ]);
    const input = Buffer.concat([
      PREFACE,
      frame(0x1, 0x8 | 0x20 | 0x1, 7, headersPayload), // PADDED | PRIORITY | END_STREAM
      frame(0x9, 0, 7, block.subarray(100, 10_000)),
      frame(0x9, 0x4, 7, block.subarray(10_000)),
    ]);
    const r = new HeaderBlockRepairer();
    const frames = parseFrames(r.push(input).subarray(PREFACE.length));
    const [first, ...continuations] = frames;
    assert.ok(first);
    assert.equal(first.type, 0x1);
    assert.equal(first.flags & 0x1, 0x1, 'END_STREAM kept');
    assert.equal(first.flags & 0x20, 0x20, 'PRIORITY kept');
    assert.equal(first.flags & 0x8, 0, 'padding dropped');
    assert.ok(continuations.length >= 1);
    assert.ok(continuations.every((f) => f.type === 0x9 && f.streamId === 7));
    assert.equal(continuations.at(-1)?.flags, 0x4, 'END_HEADERS on the last CONTINUATION');
    assert.ok(frames.every((f) => f.payload.length <= 16_384));
    assert.deepEqual(first.payload.subarray(0, 5), priority);
    const headers = decode(
      Buffer.concat([first.payload.subarray(5), ...continuations.map((f) => f.payload)]),
    );
    assert.equal(headers[':authority'], 'localhost');
    assert.equal(headers['x-big']?.length, 20_000);
  });

  it('rejects a header block larger than 1 MiB', () => {
    const r = new HeaderBlockRepairer();
    const big = Buffer.alloc(16_384);
    r.push(Buffer.concat([PREFACE, frame(0x1, 0, 1, big)]));
    assert.throws(() => {
      for (let i = 0; i < 70; i++) r.push(frame(0x9, 0, 1, big));
    }, /header block too large/);
  });
});
