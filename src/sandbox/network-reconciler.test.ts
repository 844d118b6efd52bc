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
    assert.deepEqual(report, { cni: [id('b'), id('c')], netns: [`${DIR}/${id('b')}`] });
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
    assert.deepEqual(first, { cni: [], netns: [] });
    assert.equal(dels, 1);
    await reconciler.runOnce();
    assert.equal(dels, 2, 'tried again');
  });
});
