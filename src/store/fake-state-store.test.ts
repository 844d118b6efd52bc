import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlreadyExistsError, CanceledError, UnavailableError } from '../errors.js';
import { StoreBatch } from './batch.js';
import { FakeStateStore } from './fake-state-store.js';
import { T0, sandboxConfig, testId } from './fixtures.js';

const SB = testId('sandbox-1');

function createSandbox(id: string, name: string): StoreBatch {
  return new StoreBatch()
    .putSandboxConfig(sandboxConfig(id, name))
    .putSandboxState(id, { state: 'creating', updatedAt: T0 })
    .putName(name, { kind: 'sandbox', id });
}

describe('FakeStateStore', () => {
  it('commits, records the batches and answers reads like the real store', async () => {
    const store = new FakeStateStore();
    await store.commit(createSandbox(SB, 'web'));
    assert.equal(store.getSandbox(SB)?.state.state, 'creating');
    assert.equal(store.committed.length, 1);
    assert.deepEqual(
      store.committed[0]?.map((op) => op.table),
      ['sandboxConfig', 'sandboxState', 'name'],
    );
    await assert.rejects(store.commit(createSandbox(testId('sandbox-2'), 'web')), AlreadyExistsError);
    await store.close();
    assert.ok(store.closed);
    await assert.rejects(store.commit(new StoreBatch().delSandbox(SB)), CanceledError);
  });

  it('fails a commit on request and changes nothing', async () => {
    const store = new FakeStateStore();
    store.failNextCommit(new UnavailableError('disk gone'));
    await assert.rejects(store.commit(createSandbox(SB, 'web')), /disk gone/);
    assert.equal(store.getSandbox(SB), undefined);
    assert.equal(store.committed.length, 0);
    await store.commit(createSandbox(SB, 'web'));
    assert.equal(store.stats().sandboxes, 1);
  });
});
