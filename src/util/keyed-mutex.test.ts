import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyedMutex } from './keyed-mutex.js';

describe('KeyedMutex', () => {
  it('serialises work on one key in arrival order', async () => {
    const m = new KeyedMutex();
    const order: string[] = [];
    await Promise.all([
      m.run('a', async () => {
        order.push('1 start');
        await sleep(20);
        order.push('1 end');
      }),
      m.run('a', async () => {
        order.push('2 start');
        await sleep(1);
        order.push('2 end');
      }),
    ]);
    assert.deepEqual(order, ['1 start', '1 end', '2 start', '2 end']);
    assert.deepEqual(m.busyKeys(), []);
  });

  it('runs different keys concurrently and survives a failure', async () => {
    const m = new KeyedMutex();
    const order: string[] = [];
    await Promise.all([
      m.run('a', async () => {
        await sleep(20);
        order.push('a');
      }),
      m.run('b', () => {
        order.push('b');
        return Promise.resolve();
      }),
    ]);
    assert.deepEqual(order, ['b', 'a']);
    await assert.rejects(
      m.run('a', () => Promise.reject(new Error('boom'))),
      /boom/,
    );
    assert.equal(await m.run('a', () => Promise.resolve(42)), 42);
  });
});
