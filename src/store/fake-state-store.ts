/**
 * A StateStore without a disk, for the engines' unit tests. It runs the same checks as
 * LevelStateStore (record schemas, name ownership, config/state pairs), records every committed
 * batch, and can be told to fail commits to exercise the engines' unwinding.
 */
import type { CrispError } from '../errors.js';
import type { StoreOp } from './batch.js';
import { StateIndex } from './state-index.js';
import { IndexedStateStore } from './state-store.js';

export class FakeStateStore extends IndexedStateStore {
  /** The ops of every successful commit, in order. */
  readonly committed: (readonly StoreOp[])[] = [];
  readonly #failures: CrispError[] = [];
  #closed = false;

  constructor() {
    super();
    this.setIndex(new StateIndex());
  }

  /** The next commit (after its checks pass) fails with `err` and changes nothing. */
  failNextCommit(err: CrispError): void {
    this.#failures.push(err);
  }

  get closed(): boolean {
    return this.#closed;
  }

  protected async writeBatch(ops: readonly StoreOp[]): Promise<void> {
    // Yield like a real write does, so callers cannot rely on a commit finishing synchronously.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const failure = this.#failures.shift();
    if (failure !== undefined) throw failure;
    this.committed.push(ops);
  }

  protected closeStorage(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
