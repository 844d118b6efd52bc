import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from './dictionary.js';
import {
  FLAG_FIN,
  FLAG_UNIDIRECTIONAL,
  FrameDecoder,
  FrameType,
  SpdyProtocolError,
  decodeHeaderBlock,
  encodeDataFrame,
  encodeFrame,
  encodeHeaderBlock,
  encodeSynStream,
  parseFrame,
  type SpdyFrame,
} from './frames.js';
import { HeaderCompressor, HeaderDecompressor } from './header-block.js';

function adler32(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of buf) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * The first 178 bytes of a SYN_STREAM captured from a real browser (published as a test vector in
 * facebook/proxygen's SPDY codec tests): frame header, stream fields, and the start of a header
 * block compressed by the browser's own zlib with the SPDY/3 dictionary. Truncated before the
 * cookie; a prefix of a sync-flushed deflate stream still inflates to a prefix of the block.
 */
const BROWSER_SYN_STREAM_PREFIX = Buffer.from(
  'gAMAAQEABBoAAAABAAAAAAAAOOrjxqfCAmVXUCK0wp4g2a0QqdndNQSU8aygRYcUMO3rJaYVZeal6BUn6aUBi+kkYELVSwYX' +
    'MOxWxcCiMxdcvmaUlBQUg7UWJIKLO26AANIvLkksKS3WK8goAAgglCKAAyCA8vJ1kxOTM1IBAghb4csBEEB5+brJickZqQAB' +
    'hFIbeCFCH3t4ooW6NcjXltBYKU9NKtDR0tcCC1oATZOElg==',
  'base64',
);

describe('SPDY/3 dictionary', () => {
  it('has the published length, framing and Adler-32 id', () => {
    assert.equal(SPDY3_DICTIONARY.length, 1423);
    assert.deepEqual([...SPDY3_DICTIONARY.subarray(0, 11)], [0, 0, 0, 7, ...Buffer.from('options')]);
    assert.equal(SPDY3_DICTIONARY.subarray(-6).toString('latin1'), 'enq=0.');
    // Every SPDY/3 peer (Chromium, Firefox, Go) writes this dictionary id into its zlib header.
    assert.equal(adler32(SPDY3_DICTIONARY), 0xe3c6a7c2);
  });

  it('inflates a header block compressed by a browser', () => {
    const decoder = new FrameDecoder();
    // Patch the length so the truncated capture is a complete frame.
    const frameBytes = Buffer.from(BROWSER_SYN_STREAM_PREFIX);
    frameBytes.writeUIntBE(frameBytes.length - 8, 5, 3);
    const [frame] = decoder.push(frameBytes);
    assert.ok(frame?.type === 'syn_stream');
    assert.equal(frame.streamId, 1);
    assert.equal(frame.flags, FLAG_FIN);
    // The zlib header names the dictionary by its Adler-32.
    assert.equal(frame.headerBlock.readUInt32BE(2), adler32(SPDY3_DICTIONARY));

    const raw = zlib.inflateSync(frame.headerBlock, {
      dictionary: SPDY3_DICTIONARY,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    });
    assert.equal(raw.readUInt32BE(0), 13, 'pair count');
    const pairs: string[] = [];
    let off = 4;
    while (off + 4 <= raw.length) {
      const len = raw.readUInt32BE(off);
      if (off + 4 + len > raw.length) break;
      pairs.push(raw.toString('latin1', off + 4, off + 4 + len));
      off += 4 + len;
    }
    assert.deepEqual(pairs.slice(0, 14), [
      ':version',
      'HTTP/1.1',
      ':method',
      'GET',
      ':host',
      'www.afrind.sb.facebook.com',
      ':scheme',
      'https',
      ':path',
      '/status.php',
      'pragma',
      'no-cache',
      'cache-control',
      'no-cache',
    ]);
  });
});

const sampleFrames: SpdyFrame[] = [
  { type: 'data', streamId: 1, flags: 0, data: Buffer.from('hello') },
  { type: 'data', streamId: 0x7fffffff, flags: FLAG_FIN, data: Buffer.alloc(0) },
  {
    type: 'syn_stream',
    streamId: 3,
    associatedStreamId: 0,
    priority: 7,
    slot: 2,
    flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
    headerBlock: Buffer.from([1, 2, 3]),
  },
  { type: 'syn_reply', streamId: 3, flags: FLAG_FIN, headerBlock: Buffer.from([9, 8]) },
  { type: 'rst_stream', streamId: 5, status: 5 },
  {
    type: 'settings',
    flags: 1,
    entries: [
      { id: 4, flags: 1, value: 100 },
      { id: 7, flags: 0, value: 65536 },
    ],
  },
  { type: 'ping', id: 0xfffffffe },
  { type: 'goaway', lastGoodStreamId: 9, status: 1 },
  { type: 'headers', streamId: 7, flags: 0, headerBlock: Buffer.from([4]) },
  { type: 'window_update', streamId: 1, delta: 0x7fffffff },
  { type: 'unknown', frameType: 11, flags: 3, payload: Buffer.from([0xd4, 0x74]) },
];

describe('frame encoding and decoding', () => {
  it('round-trips every frame type', () => {
    for (const frame of sampleFrames) {
      const decoded = new FrameDecoder().push(encodeFrame(frame));
      assert.deepEqual(decoded, [frame], `frame ${frame.type}`);
    }
  });

  it('encodes the documented wire layout', () => {
    const syn = encodeSynStream({
      streamId: 1,
      associatedStreamId: 0,
      priority: 0,
      slot: 0,
      flags: FLAG_FIN,
      headerBlock: Buffer.from([0xaa]),
    });
    assert.deepEqual(
      [...syn],
      [0x80, 0x03, 0x00, 0x01, 0x01, 0x00, 0x00, 0x0b, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xaa],
    );
    assert.deepEqual([...encodeDataFrame(2, FLAG_FIN, Buffer.from('x'))], [0, 0, 0, 2, 1, 0, 0, 1, 0x78]);
  });

  it('decodes frames split at every byte boundary', () => {
    const wire = Buffer.concat(sampleFrames.map(encodeFrame));
    const decoder = new FrameDecoder();
    const out: SpdyFrame[] = [];
    for (let i = 0; i < wire.length; i++) out.push(...decoder.push(wire.subarray(i, i + 1)));
    assert.deepEqual(out, sampleFrames);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it('keeps a partial frame buffered until it completes', () => {
    const wire = encodeDataFrame(1, 0, Buffer.alloc(100_000, 7));
    const decoder = new FrameDecoder();
    assert.deepEqual(decoder.push(wire.subarray(0, 50_000)), []);
    assert.equal(decoder.bufferedBytes, 50_000);
    const frames = decoder.push(wire.subarray(50_000));
    assert.equal(frames.length, 1);
    assert.ok(frames[0]?.type === 'data');
    assert.equal(frames[0].data.length, 100_000);
  });

  const malformed: [string, Buffer, RegExp][] = [
    ['wrong version', Buffer.from([0x80, 0x02, 0, 1, 0, 0, 0, 0]), /version 2/],
    ['huge control length', Buffer.from([0x80, 0x03, 0, 6, 0, 0xff, 0xff, 0xff]), /exceeds/],
    ['short RST_STREAM', Buffer.from([0x80, 0x03, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1]), /RST_STREAM.*length 4/],
    ['long PING', Buffer.from([0x80, 0x03, 0, 6, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0]), /PING.*length 8/],
    [
      'SETTINGS count past the end',
      Buffer.from([0x80, 0x03, 0, 4, 0, 0, 0, 4, 0, 0, 0, 9]),
      /SETTINGS.*invalid length/,
    ],
    ['short SYN_STREAM', Buffer.from([0x80, 0x03, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1]), /SYN_STREAM.*length/],
    ['DATA on stream 0', Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0x41]), /stream 0/],
  ];
  for (const [name, bytes, message] of malformed) {
    it(`rejects ${name} with SpdyProtocolError`, () => {
      const decoder = new FrameDecoder();
      assert.throws(
        () => decoder.push(bytes),
        (err: unknown) => {
          assert.ok(err instanceof SpdyProtocolError);
          assert.match(err.message, message);
          assert.equal(err.goAwayStatus, 1);
          return true;
        },
      );
      // A failed decoder stays failed.
      assert.throws(() => decoder.push(encodeFrame({ type: 'ping', id: 1 })), SpdyProtocolError);
    });
  }

  it('enforces the data frame limit from the header alone', () => {
    const decoder = new FrameDecoder({ maxDataFrameLength: 1000 });
    assert.deepEqual(decoder.push(encodeDataFrame(1, 0, Buffer.alloc(1000)).subarray(0, 8)), []);
    const big = encodeDataFrame(1, 0, Buffer.alloc(1001)).subarray(0, 8);
    assert.throws(() => new FrameDecoder({ maxDataFrameLength: 1000 }).push(big), /exceeds the 1000 limit/);
  });

  it('parseFrame rejects a buffer whose length disagrees with its header', () => {
    const wire = encodeFrame({ type: 'ping', id: 3 });
    assert.throws(() => parseFrame(wire.subarray(0, 10)), SpdyProtocolError);
    assert.equal(FrameType.PING, 6);
  });
});

describe('name/value header blocks', () => {
  it('round-trips, lowercasing names and keeping NUL-joined values', () => {
    const block = encodeHeaderBlock({ StreamType: 'stdin', Port: '8080', Multi: 'a\0b', empty: '' });
    const decoded = decodeHeaderBlock(block);
    assert.deepEqual({ ...decoded }, { streamtype: 'stdin', port: '8080', multi: 'a\0b', empty: '' });
    assert.equal(block.readUInt32BE(0), 4);
  });

  it('merges names that collide after lowercasing', () => {
    const decoded = decodeHeaderBlock(encodeHeaderBlock({ 'X-A': '1', 'x-a': '2' }));
    assert.equal(decoded['x-a'], '1\x002');
  });

  it('lowercases names on decode and treats __proto__ as a plain name', () => {
    const block = Buffer.concat([
      u32(2),
      u32(9),
      Buffer.from('RequestID'),
      u32(1),
      Buffer.from('7'),
      u32(9),
      Buffer.from('__proto__'),
      u32(1),
      Buffer.from('x'),
    ]);
    const decoded = decodeHeaderBlock(block);
    assert.equal(decoded.requestid, '7');
    assert.equal(decoded.__proto__, 'x');
    assert.equal(Object.getPrototypeOf(decoded), null);
  });

  const bad: [string, Buffer, RegExp][] = [
    ['an empty block', Buffer.alloc(2), /truncated/],
    ['a missing pair', Buffer.concat([u32(2), u32(1), Buffer.from('a'), u32(0)]), /truncated/],
    ['a name length past the end', Buffer.concat([u32(1), u32(100), Buffer.from('abc')]), /past the end/],
    [
      'a value length past the end',
      Buffer.concat([u32(1), u32(1), Buffer.from('a'), u32(5), Buffer.from('x')]),
      /past the end/,
    ],
    ['an empty name', Buffer.concat([u32(1), u32(0), u32(0)]), /empty/],
    ['stray bytes', Buffer.concat([u32(0), Buffer.from('zz')]), /stray/],
    ['too many headers', u32(2000), /2000 headers/],
  ];
  for (const [name, block, message] of bad) {
    it(`rejects ${name}`, () => {
      assert.throws(
        () => decodeHeaderBlock(block),
        (err: unknown) => {
          assert.ok(err instanceof SpdyProtocolError);
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }

  it('refuses to encode an empty header name', () => {
    assert.throws(() => encodeHeaderBlock({ '': 'x' }), RangeError);
  });
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

describe('header compression contexts', () => {
  it('shares one context across frames: a repeated block compresses smaller', async () => {
    const deflate = new HeaderCompressor();
    const inflate = new HeaderDecompressor();
    const headers = {
      streamtype: 'stdout',
      port: '8080',
      requestid: '42',
      'x-stream-protocol': 'v4.channel.k8s.io',
    };
    const first = await deflate.compress(headers);
    const second = await deflate.compress(headers);
    const third = await deflate.compress({ streamtype: 'stderr' });
    assert.ok(second.length < first.length, `second block ${second.length} >= first ${first.length}`);
    // Only the first block carries the zlib header with the dictionary id.
    assert.equal(first.readUInt32BE(2), 0xe3c6a7c2);
    assert.deepEqual({ ...(await inflate.decompress(first)) }, headers);
    assert.deepEqual({ ...(await inflate.decompress(second)) }, headers);
    assert.deepEqual({ ...(await inflate.decompress(third)) }, { streamtype: 'stderr' });

    // The second block means nothing without the first: a fresh context cannot read it.
    const fresh = new HeaderDecompressor();
    await assert.rejects(fresh.decompress(second), SpdyProtocolError);
    deflate.close();
    inflate.close();
  });

  it('is readable by plain zlib with the dictionary (one stream, sync-flushed blocks)', async () => {
    const deflate = new HeaderCompressor();
    const a = await deflate.compress({ a: '1' });
    const b = await deflate.compress({ b: '2' });
    const raw = zlib.inflateSync(Buffer.concat([a, b]), {
      dictionary: SPDY3_DICTIONARY,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    });
    const blockA = encodeHeaderBlock({ a: '1' });
    assert.deepEqual(raw, Buffer.concat([blockA, encodeHeaderBlock({ b: '2' })]));
    deflate.close();
  });

  it('keeps call order when many blocks are in flight at once', async () => {
    const deflate = new HeaderCompressor();
    const inflate = new HeaderDecompressor();
    const inputs = Array.from({ length: 50 }, (_, i) => ({ streamtype: 'data', requestid: String(i) }));
    const blocks = await Promise.all(inputs.map((h) => deflate.compress(h)));
    const decoded = await Promise.all(blocks.map((b) => inflate.decompress(b)));
    assert.deepEqual(
      decoded.map((h) => h.requestid),
      inputs.map((h) => h.requestid),
    );
    deflate.close();
    inflate.close();
  });

  it('handles a block far larger than a stream buffer', async () => {
    const deflate = new HeaderCompressor({ level: 0 });
    const inflate = new HeaderDecompressor();
    const value = 'v'.repeat(200 * 1024);
    const block = await deflate.compress({ big: value, small: 'x' });
    const decoded = await inflate.decompress(block);
    assert.equal(decoded.big, value);
    assert.equal(decoded.small, 'x');
    deflate.close();
    inflate.close();
  });

  it('rejects a block that inflates past the size limit, and stays failed', async () => {
    const deflate = new HeaderCompressor();
    const inflate = new HeaderDecompressor({ maxHeaderBlockSize: 4096 });
    const block = await deflate.compress({ bomb: 'a'.repeat(100_000) });
    assert.ok(block.length < 4096);
    await assert.rejects(inflate.decompress(block), /more than 4096 bytes/);
    await assert.rejects(inflate.decompress(block), SpdyProtocolError);
    deflate.close();
  });

  it('rejects garbage as a corrupt block', async () => {
    const inflate = new HeaderDecompressor();
    await assert.rejects(inflate.decompress(Buffer.from('definitely not zlib')), (err: unknown) => {
      assert.ok(err instanceof SpdyProtocolError);
      assert.match(err.message, /corrupt SPDY header block/);
      return true;
    });
  });

  it('reads a zero-length block as no headers', async () => {
    const inflate = new HeaderDecompressor();
    assert.deepEqual({ ...(await inflate.decompress(Buffer.alloc(0))) }, {});
    inflate.close();
  });
});
