/**
 * The intent journal: a multi-step operation records, durably and before each side effect, which
 * step it is about to take, so that after a crash recovery knows exactly which steps may have
 * happened and can undo them (or finish the operation). An intent lives from the operation's first
 * record to the batch that records its result, which deletes it. Everything else recovery needs
 * (paths, the pod's network) is derived from the target's own records. docs/recovery.md lists the
 * operations, their steps and what recovery does with each.
 */
import { randomBytes } from 'node:crypto';
import { StoreBatch } from './batch.js';
import { recordVersions, type IntentRecord } from './records.js';
import type { StateStore } from './state-store.js';

/** The operations that journal their steps. */
export type IntentOp =
  'run-pod' | 'stop-pod' | 'remove-pod' | 'create-container' | 'remove-container' | 'pull-image';

function nowNs(): string {
  return (BigInt(Date.now()) * 1_000_000n).toString();
}

/** One operation in flight. */
export class Intent {
  #record: IntentRecord;

  constructor(
    private readonly store: StateStore,
    record: IntentRecord,
  ) {
    this.#record = record;
  }

  get id(): string {
    return this.#record.id;
  }

  /** Records (durably, before the caller's side effect) that `step` is about to happen. */
  async advance(step: string): Promise<void> {
    await this.store.commit(this.advanceIn(new StoreBatch(), step));
  }

  /** Adds the step to a batch the caller commits with other records. */
  advanceIn(batch: StoreBatch, step: string): StoreBatch {
    this.#record = { ...this.#record, step };
    const { v: _v, ...input } = this.#record;
    return batch.putIntent(input);
  }

  /** Adds the intent's end to the batch that records the operation's result. */
  doneIn(batch: StoreBatch): StoreBatch {
    return batch.delIntent(this.#record.id);
  }

  /** Ends the intent on its own (the operation's result needs no record, or it was undone). */
  async done(): Promise<void> {
    if (this.store.getIntent(this.#record.id)) await this.store.commit(this.doneIn(new StoreBatch()));
  }
}

export class IntentJournal {
  constructor(private readonly store: StateStore) {}

  /**
   * A new intent at its first `step`, added to `batch`: committed with the operation's first
   * records, it is durable before anything else happens. The caller commits the batch.
   */
  beginIn(batch: StoreBatch, op: IntentOp, target: string, step: string): Intent {
    const record: IntentRecord = {
      v: recordVersions.intent,
      id: randomBytes(16).toString('hex'),
      op,
      target,
      step,
      data: {},
      createdAt: nowNs(),
    };
    const intent = new Intent(this.store, record);
    intent.advanceIn(batch, step);
    return intent;
  }

  /** A new intent committed on its own. */
  async begin(op: IntentOp, target: string, step: string): Promise<Intent> {
    const batch = new StoreBatch();
    const intent = this.beginIn(batch, op, target, step);
    await this.store.commit(batch);
    return intent;
  }

  /** The intents left by a previous run (or in flight now), oldest first. */
  list(op?: IntentOp): IntentRecord[] {
    return this.store
      .listIntents()
      .filter((i) => op === undefined || i.op === op)
      .sort((a, b) => (BigInt(a.createdAt) < BigInt(b.createdAt) ? -1 : 1));
  }

  /** The intents about one object. */
  forTarget(target: string, op?: IntentOp): IntentRecord[] {
    return this.list(op).filter((i) => i.target === target);
  }

  /** Takes over an intent left by a previous run, to advance or end it. */
  adopt(record: IntentRecord): Intent {
    return new Intent(this.store, record);
  }
}
