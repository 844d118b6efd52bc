import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResizeDecoder } from './resize-decoder.js';
import { ChannelCodec } from './ws-channels.js';

describe('ResizeDecoder', () => {
  it('decodes client-go lines, split anywhere, in either letter case', () => {
    const d = new ResizeDecoder();
    assert.deepEqual(d.push(Buffer.from('{"Width":80,"Hei')), []);
    assert.deepEqual(d.push(Buffer.from('ght":24}\n{"width":100,"height":40}\n')), [
      { width: 80, height: 24 },
      { width: 100, height: 40 },
    ]);
    assert.deepEqual(d.push(Buffer.from('{"Width":1,"Height":2}')), [{ width: 1, height: 2 }], 'no newline');
  });

  it('throws on garbage and out-of-range sizes', () => {
    assert.throws(() => new ResizeDecoder().push(Buffer.from('not json\n')));
    assert.throws(() => new ResizeDecoder().push(Buffer.from('{"Width":70000,"Height":1}\n')), /bad size/);
    assert.throws(() => new ResizeDecoder().push(Buffer.alloc(5000, 0x61)), /4 KiB/);
  });
});

describe('ChannelCodec', () => {
  it('reads binary, base64 and v5 close messages', () => {
    const bin = new ChannelCodec(false, false);
    assert.deepEqual(bin.decode(Buffer.from([0, 104, 105]), true), { channel: 0, data: Buffer.from('hi') });
    const b64 = new ChannelCodec(true, false);
    assert.deepEqual(b64.decode(Buffer.from(`0${Buffer.from('hi').toString('base64')}`), false), {
      channel: 0,
      data: Buffer.from('hi'),
    });
    assert.throws(() => b64.decode(Buffer.from([0, 1]), true), /binary message/);
    const v5 = ChannelCodec.forProtocol('v5.channel.k8s.io');
    assert.deepEqual(v5.decode(Buffer.from([255, 0]), true), {
      channel: 0,
      data: Buffer.alloc(0),
      close: true,
    });
    assert.throws(() => v5.decode(Buffer.from([255, 0, 1]), true), /CLOSE signal is 2 bytes/);
    assert.throws(() => bin.decode(Buffer.alloc(0), true), /no channel byte/);
  });
});
