import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { RelayDemuxer } from './attach-relay.js';

const frame = (kind: number, data: string): Buffer => {
  const body = Buffer.from(data);
  const head = Buffer.alloc(5);
  head[0] = kind;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
};

describe('RelayDemuxer', () => {
  it('splits framed packets into stdout and stderr, across chunk boundaries', () => {
    const out = new PassThrough();
    const err = new PassThrough();
    let connected = 0;
    const d = new RelayDemuxer(out, err, () => (connected += 1));
    const all = Buffer.concat([frame(0, ''), frame(2, 'hello '), frame(3, 'oops'), frame(2, 'world')]);
    for (let i = 0; i < all.length; i += 3) assert.equal(d.push(all.subarray(i, i + 3)), undefined);
    assert.equal(connected, 1);
    assert.equal((out.read() as Buffer).toString(), 'hello world');
    assert.equal((err.read() as Buffer).toString(), 'oops');
    assert.equal(d.truncated, false);
    d.push(frame(2, 'cut').subarray(0, 6));
    assert.equal(d.truncated, true);
  });

  it('reports a length no conmon packet has', () => {
    const d = new RelayDemuxer(new PassThrough(), new PassThrough());
    const bad = Buffer.alloc(5);
    bad[0] = 2;
    bad.writeUInt32BE(1 << 30, 1);
    assert.match(d.push(bad) ?? '', /packet/);
  });
});
