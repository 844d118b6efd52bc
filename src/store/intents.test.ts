import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StoreBatch } from './batch.js';
import { FakeStateStore } from './fake-state-store.js';
import { IntentJournal } from './intents.js';
import { LevelStateStore } from './state-store.js';
import { T0, sandboxConfig, testId, withTempDir } from './fixtures.js';

const SB = testId('sandbox-1');

describe('IntentJournal', () => {
  it('begins in the batch of the first records, advances step by step and ends with the result', async () => {
    const store = new FakeStateStore();
    const journal = new IntentJournal(store);
    const first = new StoreBatch()
      .putSandboxConfig(sandboxConfig(SB))
      .putSandboxState(SB, { state: 'creating', updatedAt: T0 });
    const intent = journal.beginIn(first, 'run-pod', SB, 'recorded');
    assert.equal(store.listIntents().length, 0, 'nothing is written until the batch is committed');
    await store.commit(first);
    assert.deepEqual(
      journal.forTarget(SB).map((i) => [i.op, i.step]),
      [['run-pod', 'recorded']],
    );

    await intent.advance('cni-add');
    assert.equal(journal.forTarget(SB, 'run-pod')[0]?.step, 'cni-add');

    await store.commit(
      intent.doneIn(new StoreBatch().putSandboxState(SB, { state: 'ready', updatedAt: T0 })),
    );
    assert.deepEqual(journal.list(), [], 'the result and the end of the intent are one write');
    assert.equal(store.getSandbox(SB)?.state.state, 'ready');
    await intent.done(); // ending twice is harmless
  });

  it('lists intents oldest first and by operation, and adopts one left by an earlier run', async () => {
    const store = new FakeStateStore();
    const journal = new IntentJournal(store);
    const a = await journal.begin('pull-image', 'docker.io/library/a:1', 'pulling');
    await new Promise((r) => setTimeout(r, 2));
    await journal.begin('stop-pod', SB, 'containers');
    assert.deepEqual(
      journal.list().map((i) => i.op),
      ['pull-image', 'stop-pod'],
    );
    assert.deepEqual(
      journal.list('stop-pod').map((i) => i.target),
      [SB],
    );
    const leftover = journal.list('pull-image')[0];
    assert.ok(leftover);
    const adopted = journal.adopt(leftover);
    assert.equal(adopted.id, a.id);
    await adopted.done();
    assert.deepEqual(
      journal.list().map((i) => i.op),
      ['stop-pod'],
    );
  });

  it('survives a reopen of the database (the point of a journal)', async () => {
    await withTempDir(async (dir) => {
      const store = new LevelStateStore(dir);
      await store.open();
      const intent = await new IntentJournal(store).begin('remove-pod', SB, 'containers');
      await intent.advance('netns');
      await store.close();
      const again = new LevelStateStore(dir);
      await again.open();
      const left = new IntentJournal(again).list();
      assert.deepEqual(
        left.map((i) => [i.op, i.target, i.step]),
        [['remove-pod', SB, 'netns']],
      );
      await again.close();
    });
  });
});
