import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResourceExhaustedError } from '../errors.js';
import { RequestCache, type StreamRequest } from './tokens.js';

const exec: StreamRequest = {
  kind: 'exec',
  containerId: 'c1',
  cmd: ['true'],
  tty: false,
  stdin: false,
  stdout: true,
  stderr: true,
};

describe('RequestCache', () => {
  it('hands out distinct url-safe tokens of 128 bits', () => {
    const cache = new RequestCache();
    const a = cache.insert(exec);
    const b = cache.insert(exec);
    assert.notEqual(a, b);
    assert.match(a, /^[A-Za-z0-9_-]{22}$/);
  });

  it('gives the request back once', () => {
    const cache = new RequestCache();
    const t = cache.insert(exec);
    assert.deepEqual(cache.consume(t), exec);
    assert.equal(cache.consume(t), undefined);
    assert.equal(cache.consume('unknown'), undefined);
  });

  it('forgets requests after the TTL', () => {
    let now = 0;
    const cache = new RequestCache(1000, 10, () => now);
    const t = cache.insert(exec);
    now = 999;
    const u = cache.insert(exec);
    now = 1000;
    assert.equal(cache.consume(t), undefined, 'expired exactly at the TTL');
    assert.deepEqual(cache.consume(u), exec);
  });

  it('refuses more than maxInFlight outstanding tokens, and frees room as they expire', () => {
    let now = 0;
    const cache = new RequestCache(1000, 2, () => now);
    cache.insert(exec);
    cache.insert(exec);
    assert.throws(() => cache.insert(exec), ResourceExhaustedError);
    now = 1500;
    assert.doesNotThrow(() => cache.insert(exec));
    assert.equal(cache.size, 1);
  });
});
