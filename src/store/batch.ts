/**
 * StoreBatch collects the changes of one transition; `StateStore.commit(batch)` writes them as a
 * single LevelDB batch (all or nothing) and then updates the in-memory index. The builder only
 * records: values are checked, encoded and frozen by commit, at the moment it is called.
 */
import {
  recordVersions,
  type NameRecord,
  type RecordInput,
  type TableName,
  type TableRecords,
} from './records.js';

/** One change: `value` null deletes. `key` is the entity id (or the name, for names). */
export type StoreOp = {
  [T in TableName]: { readonly table: T; readonly key: string; readonly value: TableRecords[T] | null };
}[TableName];

export class StoreBatch {
  readonly #ops: StoreOp[] = [];

  /** The changes in the order they were added; a later change to the same key wins. */
  get ops(): readonly StoreOp[] {
    return this.#ops;
  }

  get length(): number {
    return this.#ops.length;
  }

  /** Written once, when the sandbox is created, together with its first state. */
  putSandboxConfig(config: RecordInput<'sandboxConfig'>): this {
    return this.#push({
      table: 'sandboxConfig',
      key: config.id,
      value: { ...config, v: recordVersions.sandboxConfig },
    });
  }

  putSandboxState(id: string, state: RecordInput<'sandboxState'>): this {
    return this.#push({
      table: 'sandboxState',
      key: id,
      value: { ...state, v: recordVersions.sandboxState },
    });
  }

  /** Deletes the sandbox's config and state (not its name: delName that too). */
  delSandbox(id: string): this {
    this.#push({ table: 'sandboxConfig', key: id, value: null });
    return this.#push({ table: 'sandboxState', key: id, value: null });
  }

  /** Written once, when the container is created, together with its first state. */
  putContainerConfig(config: RecordInput<'containerConfig'>): this {
    return this.#push({
      table: 'containerConfig',
      key: config.id,
      value: { ...config, v: recordVersions.containerConfig },
    });
  }

  putContainerState(id: string, state: RecordInput<'containerState'>): this {
    return this.#push({
      table: 'containerState',
      key: id,
      value: { ...state, v: recordVersions.containerState },
    });
  }

  /** Deletes the container's config and state (not its name: delName that too). */
  delContainer(id: string): this {
    this.#push({ table: 'containerConfig', key: id, value: null });
    return this.#push({ table: 'containerState', key: id, value: null });
  }

  putImage(image: RecordInput<'image'>): this {
    return this.#push({ table: 'image', key: image.id, value: { ...image, v: recordVersions.image } });
  }

  delImage(id: string): this {
    return this.#push({ table: 'image', key: id, value: null });
  }

  /**
   * Reserves `name` for a sandbox or container. Commit fails with AlreadyExistsError if another
   * owner holds it (re-putting the same owner is a no-op).
   */
  putName(name: string, owner: Pick<NameRecord, 'kind' | 'id'>): this {
    return this.#push({
      table: 'name',
      key: name,
      value: { v: recordVersions.name, name, kind: owner.kind, id: owner.id },
    });
  }

  delName(name: string): this {
    return this.#push({ table: 'name', key: name, value: null });
  }

  putIntent(intent: RecordInput<'intent'>): this {
    return this.#push({ table: 'intent', key: intent.id, value: { ...intent, v: recordVersions.intent } });
  }

  delIntent(id: string): this {
    return this.#push({ table: 'intent', key: id, value: null });
  }

  #push(op: StoreOp): this {
    this.#ops.push(op);
    return this;
  }
}
