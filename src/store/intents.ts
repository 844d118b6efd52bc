/**
 * The intent journal: a multi-step operation records, durably and before each side effect, what
 * it is about to do, so that after a crash recovery knows exactly which steps may have happened
 * and can undo them (or finish the operation). An intent lives from the operation's first record
 * to the batch that records its result, which deletes it. docs/recovery.md lists the operations,
 * their steps and what recovery does with each.
 */
import { randomBytes } from 'node:crypto';
import { StoreBatch } from './batch.js';
import { recordVersions, type IntentRecord, type JsonValue } from './records.js';
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

  get step(): string {
    return this.#record.step;
  }

  /** Records (durably, before the caller's side effect) that `step` is about to happen. */
  async advance(step: string, data?: Record<string, JsonValue>): Promise<void> {
    await this.store.commit(this.advanceIn(new StoreBatch(), step, data));
  }

  /** Adds the step to a batch the caller commits with other records. */
  advanceIn(batch: StoreBatch, step: string, data?: Record<string, JsonValue>): StoreBatch {
    const merged = data === undefined ? this.#record.data : { ...asObject(this.#record.data), ...data };
    const { v: _v, ...rest } = this.#record;
    const next = { ...rest, step, data: merged };
    this.#record = { ...next, v: this.#record.v };
    return batch.putIntent(next);
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

function asObject(v: JsonValue): Record<string, JsonValue> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {};
}

export class IntentJournal {
  constructor(private readonly store: StateStore) {}

  /**
   * A new intent at its first `step`, added to `batch`: committed with the operation's first
   * records, it is durable before anything else happens. The caller commits the batch.
   */
  beginIn(
    batch: StoreBatch,
    op: IntentOp,
    target: string,
    step: string,
    data: Record<string, JsonValue> = {},
  ): Intent {
    const record: IntentRecord = {
      v: recordVersions.intent,
      id: randomBytes(16).toString('hex'),
      op,
      target,
      step,
      data,
      createdAt: nowNs(),
    };
    const { v: _v, ...input } = record;
    batch.putIntent(input);
    return new Intent(this.store, record);
  }

  /** A new intent committed on its own. */
  async begin(
    op: IntentOp,
    target: string,
    step: string,
    data: Record<string, JsonValue> = {},
  ): Promise<Intent> {
    const batch = new StoreBatch();
    const intent = this.beginIn(batch, op, target, step, data);
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
