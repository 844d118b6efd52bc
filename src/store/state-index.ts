/**
 * The in-memory copy of the state database that every read is answered from. It knows nothing about
 * LevelDB: `prepare` turns a batch into checked, frozen values, `check` tests it against the current
 * contents, and `apply` (called only after the disk write succeeded) makes it visible.
 */
import { AlreadyExistsError, InternalError } from '../errors.js';
import type { StoreOp } from './batch.js';
import {
  describeIssues,
  recordSchemas,
  type ContainerConfigRecord,
  type ContainerStateRecord,
  type ImageRecord,
  type IntentRecord,
  type NameRecord,
  type SandboxConfigRecord,
  type SandboxStateRecord,
  type TableName,
  type TableRecords,
} from './records.js';

export interface StoredSandbox {
  readonly config: SandboxConfigRecord;
  readonly state: SandboxStateRecord;
}

export interface StoredContainer {
  readonly config: ContainerConfigRecord;
  readonly state: ContainerStateRecord;
}

/** Record counts, for /debug/state. */
export interface StoreStats {
  readonly sandboxes: number;
  readonly containers: number;
  readonly images: number;
  readonly names: number;
  readonly intents: number;
}

type Tables = { readonly [T in TableName]: Map<string, TableRecords[T]> };

/** The two tables that make up one sandbox or container. */
const entityParts = {
  sandbox: { config: 'sandboxConfig', state: 'sandboxState' },
  container: { config: 'containerConfig', state: 'containerState' },
} as const;
type EntityKind = keyof typeof entityParts;

function entityOf(table: TableName): EntityKind | undefined {
  switch (table) {
    case 'sandboxConfig':
    case 'sandboxState':
      return 'sandbox';
    case 'containerConfig':
    case 'containerState':
      return 'container';
    case 'image':
    case 'name':
    case 'intent':
      return undefined;
  }
}

/** `sandbox "abc" config`, `name "x"`: how messages name the target of an op. */
export function describeKey(table: TableName, key: string): string {
  const entity = entityOf(table);
  if (entity === undefined) return `${table} ${JSON.stringify(key)}`;
  return `${entity} ${JSON.stringify(key)} ${table === entityParts[entity].config ? 'config' : 'state'}`;
}

export class StateIndex {
  readonly #tables: Tables = {
    sandboxConfig: new Map(),
    sandboxState: new Map(),
    containerConfig: new Map(),
    containerState: new Map(),
    image: new Map(),
    name: new Map(),
    intent: new Map(),
  };
  readonly #sandboxes = new Map<string, StoredSandbox>();
  readonly #containers = new Map<string, StoredContainer>();

  /**
   * Snapshots and checks the values of `ops`: each is encoded to JSON and back (so memory holds
   * exactly what a reload would read: no undefined fields, no BigInt, no cycles), validated against
   * its schema, and frozen. Throws InternalError naming the first bad value; touches nothing.
   */
  static prepare(ops: readonly StoreOp[]): StoreOp[] {
    return ops.map((op) => {
      // Sandbox and container keys get a `/config` or `/state` suffix on disk.
      if (op.key === '' || (entityOf(op.table) !== undefined && op.key.includes('/'))) {
        throw new InternalError(
          `cannot store ${describeKey(op.table, op.key)}: an id must be non-empty, without '/'`,
        );
      }
      if (op.value === null) return op;
      let decoded: unknown;
      try {
        decoded = JSON.parse(JSON.stringify(op.value));
      } catch (err) {
        throw new InternalError(
          `cannot store ${describeKey(op.table, op.key)}: not encodable as JSON (${err instanceof Error ? err.message : String(err)})`,
          { cause: err },
        );
      }
      const parsed = recordSchemas[op.table].safeParse(decoded);
      if (!parsed.success) {
        throw new InternalError(
          `cannot store ${describeKey(op.table, op.key)}: ${describeIssues(parsed.error)}`,
        );
      }
      const value = deepFreeze(parsed.data);
      const named = keyInRecord(op.table, value);
      if (named !== undefined && named !== op.key) {
        throw new InternalError(
          `cannot store ${describeKey(op.table, op.key)}: the record names ${JSON.stringify(named)}`,
        );
      }
      return { table: op.table, key: op.key, value } as StoreOp;
    });
  }

  /**
   * Checks prepared ops against the current contents, as if applied in order: a name may be taken
   * only from nobody or from its current owner, and every sandbox and container touched must end
   * with both a config and a state or with neither. Throws AlreadyExistsError or InternalError.
   */
  check(ops: readonly StoreOp[]): void {
    const overlay = new Map<string, StoreOp>();
    const lookup = <T extends TableName>(table: T, key: string): TableRecords[T] | undefined => {
      const staged = overlay.get(`${table}\0${key}`);
      if (staged !== undefined) return (staged.value ?? undefined) as TableRecords[T] | undefined;
      return this.#tables[table].get(key);
    };
    const touched = new Map<string, EntityKind>();
    for (const op of ops) {
      if (op.table === 'name' && op.value !== null) {
        const holder = lookup('name', op.key);
        if (holder !== undefined && (holder.id !== op.value.id || holder.kind !== op.value.kind)) {
          throw new AlreadyExistsError('name', op.key, { hint: `reserved for ${holder.kind} ${holder.id}` });
        }
      }
      const entity = entityOf(op.table);
      if (entity !== undefined) touched.set(`${entity}\0${op.key}`, entity);
      overlay.set(`${op.table}\0${op.key}`, op);
    }
    for (const [compound, entity] of touched) {
      const id = compound.slice(entity.length + 1);
      const hasConfig = lookup(entityParts[entity].config, id) !== undefined;
      const hasState = lookup(entityParts[entity].state, id) !== undefined;
      if (hasConfig !== hasState) {
        throw new InternalError(
          `batch would leave ${entity} ${JSON.stringify(id)} with a ${hasConfig ? 'config but no state' : 'state but no config'}`,
        );
      }
    }
  }

  /** Makes prepared, checked ops visible. Call only after they are on disk. */
  apply(ops: readonly StoreOp[]): void {
    const touched = new Set<string>();
    for (const op of ops) {
      this.#set(op);
      const entity = entityOf(op.table);
      if (entity !== undefined) touched.add(`${entity}\0${op.key}`);
    }
    for (const compound of touched) {
      const [entity, id] = compound.split('\0') as [EntityKind, string];
      this.#refreshEntity(entity, id);
    }
  }

  /**
   * Adds one decoded record read from disk. After the last, `finishLoad` pairs configs with states
   * and returns the ids left with only one of the two (damage the caller reports).
   */
  load<T extends TableName>(table: T, key: string, value: TableRecords[T]): void {
    this.#tables[table].set(key, deepFreeze(value));
  }

  finishLoad(): string[] {
    const problems: string[] = [];
    for (const entity of ['sandbox', 'container'] as const) {
      const { config, state } = entityParts[entity];
      const ids = new Set([...this.#tables[config].keys(), ...this.#tables[state].keys()]);
      for (const id of ids) {
        this.#refreshEntity(entity, id);
        if (this.#tables[config].has(id) !== this.#tables[state].has(id)) {
          problems.push(
            `${entity} ${JSON.stringify(id)} has a ${this.#tables[config].has(id) ? 'config but no state' : 'state but no config'}`,
          );
        }
      }
    }
    return problems;
  }

  getSandbox(id: string): StoredSandbox | undefined {
    return this.#sandboxes.get(id);
  }

  listSandboxes(): StoredSandbox[] {
    return [...this.#sandboxes.values()];
  }

  getContainer(id: string): StoredContainer | undefined {
    return this.#containers.get(id);
  }

  listContainers(): StoredContainer[] {
    return [...this.#containers.values()];
  }

  getImage(id: string): ImageRecord | undefined {
    return this.#tables.image.get(id);
  }

  listImages(): ImageRecord[] {
    return [...this.#tables.image.values()];
  }

  getName(name: string): NameRecord | undefined {
    return this.#tables.name.get(name);
  }

  listNames(): NameRecord[] {
    return [...this.#tables.name.values()];
  }

  getIntent(id: string): IntentRecord | undefined {
    return this.#tables.intent.get(id);
  }

  listIntents(): IntentRecord[] {
    return [...this.#tables.intent.values()];
  }

  stats(): StoreStats {
    return {
      sandboxes: this.#sandboxes.size,
      containers: this.#containers.size,
      images: this.#tables.image.size,
      names: this.#tables.name.size,
      intents: this.#tables.intent.size,
    };
  }

  #set<T extends TableName>(op: { table: T; key: string; value: TableRecords[T] | null }): void {
    const table: Map<string, TableRecords[T]> = this.#tables[op.table];
    if (op.value === null) table.delete(op.key);
    else table.set(op.key, op.value);
  }

  /** Rebuilds the {config, state} pair of one entity from its two tables. */
  #refreshEntity(entity: EntityKind, id: string): void {
    if (entity === 'sandbox') {
      const config = this.#tables.sandboxConfig.get(id);
      const state = this.#tables.sandboxState.get(id);
      if (config !== undefined && state !== undefined)
        this.#sandboxes.set(id, Object.freeze({ config, state }));
      else this.#sandboxes.delete(id);
    } else {
      const config = this.#tables.containerConfig.get(id);
      const state = this.#tables.containerState.get(id);
      if (config !== undefined && state !== undefined)
        this.#containers.set(id, Object.freeze({ config, state }));
      else this.#containers.delete(id);
    }
  }
}

/** The key a record names itself by (`name` for names, `id` for the rest), undefined for states. */
export function keyInRecord(table: TableName, value: TableRecords[TableName]): string | undefined {
  if (table === 'name' && 'name' in value) return value.name;
  return 'id' in value ? value.id : undefined;
}

/** Freezes a JSON-shaped value and everything in it, so readers cannot change the index. */
export function deepFreeze<T>(value: T): T {
  // No cycle check: values here came out of JSON.parse or a zod parse of it. Zod has already frozen
  // the top level of each record, so this recurses regardless.
  if (typeof value === 'object' && value !== null) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
