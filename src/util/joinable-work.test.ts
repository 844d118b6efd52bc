import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CallerGoneError, JoinableWork } from './joinable-work.js';

describe('JoinableWork', () => {
  it('lets a retry join the first call and get its result; the work runs once', async () => {
    let runs = 0;
    const discarded: string[] = [];
    const w = new JoinableWork<string>(1_000, (k) => {
      discarded.push(k);
      return Promise.resolve();
    });
    const start = async (): Promise<string> => {
      runs += 1;
      await sleep(30);
      return 'id-1';
    };
    const [a, b] = await Promise.all([w.run('pod', undefined, start), w.run('pod', undefined, start)]);
    assert.equal(a, 'id-1');
    assert.equal(b, 'id-1');
    assert.equal(runs, 1);
    assert.deepEqual(w.pending(), { inflight: [], parked: [] });
    assert.deepEqual(discarded, []);
  });

  it('parks a result whose callers all went away, hands it to a later retry', async () => {
    const w = new JoinableWork<string>(1_000, () => Promise.resolve());
    const caller = new AbortController();
    const first = w.run('ctr', caller.signal, async () => {
      await sleep(30);
      return 'id-2';
    });
    caller.abort();
    await assert.rejects(first, CallerGoneError);
    await sleep(50);
    assert.deepEqual(w.pending().parked, ['ctr']);
    let ranAgain = false;
    const retry = await w.run('ctr', undefined, () => {
      ranAgain = true;
      return Promise.resolve('other');
    });
    assert.equal(retry, 'id-2');
    assert.equal(ranAgain, false);
    assert.deepEqual(w.pending().parked, []);
  });

  it('discards a parked result nobody collects within the grace period', async () => {
    const discarded: [string, string][] = [];
    const w = new JoinableWork<string>(40, (k, r) => {
      discarded.push([k, r]);
      return Promise.resolve();
    });
    const caller = new AbortController();
    const first = w.run('lost', caller.signal, async () => {
      await sleep(10);
      return 'id-3';
    });
    caller.abort();
    await assert.rejects(first, CallerGoneError);
    await sleep(100);
    assert.deepEqual(discarded, [['lost', 'id-3']]);
    assert.deepEqual(w.pending(), { inflight: [], parked: [] });
  });

  it('passes a failure to every waiter and keeps nothing', async () => {
    const w = new JoinableWork<string>(1_000, () => Promise.resolve());
    const start = async (): Promise<string> => {
      await sleep(10);
      throw new Error('runc failed');
    };
    const results = await Promise.allSettled([
      w.run('bad', undefined, start),
      w.run('bad', undefined, start),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    assert.deepEqual(w.pending(), { inflight: [], parked: [] });
  });
});
