import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { NetworkReconciler } from './network-reconciler.js';
import type { PodNetworkRef } from './pod-network.js';

const DIR = '/run/crisp/netns';
const id = (c: string) => c.repeat(64);

describe('NetworkReconciler', () => {
  it('tears down CNI attachments first, then namespaces, of pods the store does not have', async () => {
    const steps: string[] = [];
    const leaks: string[] = [];
    const files = [`${DIR}/${id('a')}`, `${DIR}/${id('b')}`];
    const reconciler = new NetworkReconciler({
      sandboxIds: () => new Set([id('a')]),
      netns: {
        list: () => Promise.resolve(files),
        remove: (p) => {
          steps.push(`rm ${p.slice(-3)}`);
          return Promise.resolve();
        },
        pathFor: (n) => `${DIR}/${n}`,
      },
      cni: {
        cachedSandboxIds: () => Promise.resolve([id('a'), id('b'), id('c')]),
        del: (pod: PodNetworkRef) => {
          steps.push(`del ${pod.sandboxId.slice(-3)} ${pod.netnsPath === '' ? 'no-netns' : 'netns'}`);
          return Promise.resolve();
        },
      },
      log: pino({ level: 'silent' }),
      onLeak: (kind) => leaks.push(kind),
    });
    const report = await reconciler.runOnce();
    assert.deepEqual(steps, ['del bbb netns', 'del ccc no-netns', 'rm bbb']);
    assert.deepEqual(report, { cni: [id('b'), id('c')], ipam: [], netns: [`${DIR}/${id('b')}`] });
    assert.deepEqual(leaks, ['cni_cache', 'cni_cache', 'netns']);
  });

  it('keeps going past a failure, which it retries next time, and joins a pass under way', async () => {
    let dels = 0;
    const reconciler = new NetworkReconciler({
      sandboxIds: () => new Set(),
      netns: {
        list: () => Promise.resolve([`${DIR}/${id('d')}`]),
        remove: () => Promise.reject(new Error('busy')),
        pathFor: (n) => `${DIR}/${n}`,
      },
      cni: {
        cachedSandboxIds: () => Promise.resolve([id('d')]),
        del: () => {
          dels += 1;
          return Promise.reject(new Error('plugin failed'));
        },
      },
      log: pino({ level: 'silent' }),
    });
    const [first, second] = await Promise.all([reconciler.runOnce(), reconciler.runOnce()]);
    assert.equal(first, second, 'one pass');
    assert.deepEqual(first, { cni: [], ipam: [], netns: [] });
    assert.equal(dels, 1);
    await reconciler.runOnce();
    assert.equal(dels, 2, 'tried again');
  });

  it('releases IPAM allocations without a cache entry, and lists before it reads the store', async () => {
    const steps: string[] = [];
    const leaks: string[] = [];
    // A pod created while the pass lists: its namespace, cache entry and lease are listed, and
    // its record (committed first) is in the store by the time the store is read.
    const created = new Set<string>();
    const reconciler = new NetworkReconciler({
      sandboxIds: () => new Set(created),
      netns: {
        list: () => {
          created.add(id('f'));
          return Promise.resolve([`${DIR}/${id('f')}`]);
        },
        remove: (p) => {
          steps.push(`rm ${p.slice(-3)}`);
          return Promise.resolve();
        },
        pathFor: (n) => `${DIR}/${n}`,
      },
      cni: {
        cachedSandboxIds: () => Promise.resolve([id('f'), id('a')]),
        leasedSandboxIds: () => Promise.resolve([id('f'), id('a'), id('e')]),
        del: (pod: PodNetworkRef) => {
          steps.push(`del ${pod.sandboxId.slice(-3)}`);
          return Promise.resolve();
        },
      },
      log: pino({ level: 'silent' }),
      onLeak: (kind) => leaks.push(kind),
    });
    const report = await reconciler.runOnce();
    assert.deepEqual(steps, ['del aaa', 'del eee'], 'the pod created meanwhile is untouched');
    assert.deepEqual(report, { cni: [id('a')], ipam: [id('e')], netns: [] });
    assert.deepEqual(leaks, ['cni_cache', 'ipam']);
  });
});
