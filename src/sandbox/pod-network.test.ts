import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import { bandwidthQuantity, podBandwidth } from './pod-network.js';

describe('pod bandwidth annotations', () => {
  it('reads Kubernetes quantities as bits per second', () => {
    assert.equal(bandwidthQuantity('10M', 'a'), 10_000_000);
    assert.equal(bandwidthQuantity('1Gi', 'a'), 2 ** 30);
    assert.equal(bandwidthQuantity('500k', 'a'), 500_000);
    assert.equal(bandwidthQuantity('1.5M', 'a'), 1_500_000);
  });

  it('sets rates with an unlimited burst, only for the annotations present', () => {
    assert.deepEqual(podBandwidth({ 'kubernetes.io/ingress-bandwidth': '1M' }), {
      ingressRate: 1_000_000,
      ingressBurst: 2 ** 32 - 1,
    });
    assert.equal(podBandwidth({ other: 'x' }), undefined);
  });

  it('refuses a value that is not a bandwidth, naming the annotation', () => {
    for (const bad of ['fast', '-1M', '0', '10 M', '5X']) {
      assert.throws(
        () => podBandwidth({ 'kubernetes.io/egress-bandwidth': bad }),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === 'config.annotations["kubernetes.io/egress-bandwidth"]',
      );
    }
  });
});
