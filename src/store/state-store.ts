/**
 * The state store: every record of the state database held in memory, and one write path.
 *
 * Reads (get*, list*, stats) answer from the in-memory index and never touch the disk. Writes go
 * through `commit(batch)`: the batch is checked, written as one LevelDB batch, and only when that
 * has resolved is the index updated (disk before memory). A failed commit changes nothing, on disk
 * or in memory. Commits are applied one at a time in the order they were called, so the index
 * always matches the disk.
 */
import {
  CanceledError,
  FailedPreconditionError,
  InternalError,
  ResourceExhaustedError,
  UnavailableError,
  toCrispError,
  type CrispError,
} from '../errors.js';
import type { StoreBatch, StoreOp } from './batch.js';
import {
  corruptError,
  detailOf,
  openStateDb,
  type JsonSublevel,
  type OpenStateDbOptions,
  type StateDb,
  type SublevelName,
} from './db.js';
import {
  RecordDecodeError,
  decodeRecord,
  type ImageRecord,
  type IntentRecord,
  type NameRecord,
  type TableName,
} from './records.js';
import {
  StateIndex,
  keyInRecord,
  type StoreStats,
  type StoredContainer,
  type StoredSandbox,
} from './state-index.js';

export type { StoreStats, StoredContainer, StoredSandbox } from './state-index.js';

/** What the engines see; FakeStateStore (fake-state-store.ts) implements it for their unit tests. */
export interface StateStore {
  getSandbox(id: string): StoredSandbox | undefined;
  listSandboxes(): StoredSandbox[];
  getContainer(id: string): StoredContainer | undefined;
  listContainers(): StoredContainer[];
  getImage(id: string): ImageRecord | undefined;
  listImages(): ImageRecord[];
  /** Who holds a reserved name, if anyone. */
  getName(name: string): NameRecord | undefined;
  listNames(): NameRecord[];
  getIntent(id: string): IntentRecord | undefined;
  listIntents(): IntentRecord[];
  /**
   * Writes the batch atomically, then updates memory. Throws (changing nothing) InternalError for a
   * value that is not a valid record or a batch that would leave a config without its state,
   * AlreadyExistsError for a name held by another owner, the write's typed error if the disk refuses,
   * CanceledError once the store is closing.
   */
  commit(batch: StoreBatch): Promise<void>;
  stats(): StoreStats;
  /** Waits for the commits already called, then releases the database. */
  close(): Promise<void>;
}

/** The read side and the commit pipeline, over a storage-specific `writeBatch`. */
export abstract class IndexedStateStore implements StateStore {
  #index: StateIndex | undefined;
  #writes: Promise<void> = Promise.resolve();
  /** Set by the first close(); later calls get the same promise. */
  #closing: Promise<void> | undefined;

  /** Writes checked, encoded ops atomically; throws a CrispError and writes nothing on failure. */
  protected abstract writeBatch(ops: readonly StoreOp[]): Promise<void>;
  protected abstract closeStorage(): Promise<void>;

  /** Installs the index that reads and commits use; until then both throw. */
  protected setIndex(index: StateIndex): void {
    this.#index = index;
  }

  getSandbox(id: string): StoredSandbox | undefined {
    return this.#readable().getSandbox(id);
  }

  listSandboxes(): StoredSandbox[] {
    return this.#readable().listSandboxes();
  }

  getContainer(id: string): StoredContainer | undefined {
    return this.#readable().getContainer(id);
  }

  listContainers(): StoredContainer[] {
    return this.#readable().listContainers();
  }

  getImage(id: string): ImageRecord | undefined {
    return this.#readable().getImage(id);
  }

  listImages(): ImageRecord[] {
    return this.#readable().listImages();
  }

  getName(name: string): NameRecord | undefined {
    return this.#readable().getName(name);
  }

  listNames(): NameRecord[] {
    return this.#readable().listNames();
  }

  getIntent(id: string): IntentRecord | undefined {
    return this.#readable().getIntent(id);
  }

  listIntents(): IntentRecord[] {
    return this.#readable().listIntents();
  }

  stats(): StoreStats {
    return this.#readable().stats();
  }

  async commit(batch: StoreBatch): Promise<void> {
    if (this.#closing !== undefined) throw new CanceledError('state store is closed');
    const index = this.#readable();
    // Snapshot and check the values now, so a caller changing its objects after this call (or a
    // value that cannot be encoded) cannot affect what is written.
    const ops = StateIndex.prepare(batch.ops);
    if (ops.length === 0) return;
    const turn = this.#writes.then(async () => {
      index.check(ops);
      try {
        await this.writeBatch(ops);
      } catch (err) {
        throw toCrispError(err, 'state database write failed');
      }
      index.apply(ops);
    });
    this.#writes = turn.catch(() => undefined);
    await turn;
  }

  close(): Promise<void> {
    this.#closing ??= this.#writes.then(() => this.closeStorage());
    return this.#closing;
  }

  #readable(): StateIndex {
    if (this.#index === undefined) throw new InternalError('state store is not open');
    return this.#index;
  }
}

export interface LevelStateStoreOptions extends OpenStateDbOptions {
  /**
   * fsync every commit (LevelDB `sync: true`), so a committed transition survives a power loss and
   * not only a crash of crisp. Default true.
   */
  sync?: boolean;
}

/** Where each table lives: sandboxes and containers as `<id>/config` and `<id>/state`. */
const layout: {
  readonly [T in TableName]: { readonly sublevel: SublevelName; readonly part?: 'config' | 'state' };
} = {
  sandboxConfig: { sublevel: 'sandboxes', part: 'config' },
  sandboxState: { sublevel: 'sandboxes', part: 'state' },
  containerConfig: { sublevel: 'containers', part: 'config' },
  containerState: { sublevel: 'containers', part: 'state' },
  image: { sublevel: 'images' },
  name: { sublevel: 'names' },
  intent: { sublevel: 'intents' },
};

/** The LevelDB key of a record, inside its sublevel. */
export function diskKey(table: TableName, key: string): string {
  const part = layout[table].part;
  return part === undefined ? key : `${key}/${part}`;
}

/** The table and entity key a LevelDB key in `sublevel` belongs to, or undefined if it is not ours. */
function tableOf(sublevel: SublevelName, key: string): { table: TableName; key: string } | undefined {
  for (const [table, place] of Object.entries(layout) as [TableName, (typeof layout)[TableName]][]) {
    if (place.sublevel !== sublevel) continue;
    if (place.part === undefined) return { table, key };
    const suffix = `/${place.part}`;
    if (key.endsWith(suffix) && key.length > suffix.length && !key.slice(0, -suffix.length).includes('/')) {
      return { table, key: key.slice(0, -suffix.length) };
    }
  }
  return undefined;
}

type LevelOp =
  | { type: 'put'; sublevel: JsonSublevel; key: string; value: unknown }
  | { type: 'del'; sublevel: JsonSublevel; key: string };

/** The state store over the LevelDB at <root_dir>/state. */
export class LevelStateStore extends IndexedStateStore {
  #db: StateDb | undefined;
  #opened = false;
  readonly #sync: boolean;

  constructor(
    readonly location: string,
    private readonly options: LevelStateStoreOptions = {},
  ) {
    super();
    this.#sync = options.sync ?? true;
  }

  /** The schema version of the open database. */
  get schemaVersion(): number {
    if (this.#db === undefined) throw new InternalError('state store is not open');
    return this.#db.schemaVersion;
  }

  /** Damage LevelDB skipped while opening (see StateDb.recoveryWarnings); log each at error level. */
  get recoveryWarnings(): readonly string[] {
    return this.#db?.recoveryWarnings ?? [];
  }

  /**
   * Opens the database (see openStateDb for what it refuses and why) and loads every record into
   * memory. A record that does not decode refuses the start as corruption (FailedPreconditionError),
   * or as too new if a newer crisp wrote it. A store is opened once; make a new one to reopen.
   */
  async open(): Promise<void> {
    if (this.#opened) throw new InternalError(`state store ${this.location} was already opened`);
    this.#opened = true;
    const db = await openStateDb(this.location, this.options);
    try {
      this.setIndex(await loadIndex(db));
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
    this.#db = db;
  }

  protected async writeBatch(ops: readonly StoreOp[]): Promise<void> {
    const db = this.#db;
    if (db === undefined) throw new UnavailableError(`state database ${this.location} is not open`);
    const levelOps: LevelOp[] = ops.map((op) => {
      const sublevel = db.sublevels[layout[op.table].sublevel];
      const key = diskKey(op.table, op.key);
      return op.value === null
        ? { type: 'del', sublevel, key }
        : { type: 'put', sublevel, key, value: op.value };
    });
    try {
      await db.root.batch<string, unknown>(levelOps, { sync: this.#sync });
    } catch (err) {
      throw levelWriteError(this.location, err);
    }
  }

  protected async closeStorage(): Promise<void> {
    const db = this.#db;
    if (db !== undefined) await db.close();
  }
}

async function loadIndex(db: StateDb): Promise<StateIndex> {
  const index = new StateIndex();
  const sublevels: readonly SublevelName[] = ['sandboxes', 'containers', 'images', 'names', 'intents'];
  for (const name of sublevels) {
    let entries: [string, unknown][];
    try {
      entries = await db.sublevels[name].iterator().all();
    } catch (err) {
      throw corruptError(db.location, `reading ${name}: ${detailOf(err)}`, err);
    }
    for (const [diskKey, raw] of entries) {
      const where = tableOf(name, diskKey);
      if (where === undefined)
        throw corruptError(db.location, `unexpected key ${JSON.stringify(diskKey)} in ${name}`);
      try {
        const record = decodeRecord(where.table, raw);
        const named = keyInRecord(where.table, record);
        if (named !== undefined && named !== where.key) {
          throw new Error(`the record names ${JSON.stringify(named)}`);
        }
        index.load(where.table, where.key, record);
      } catch (err) {
        if (err instanceof RecordDecodeError && err.tooNew) {
          throw new FailedPreconditionError(
            `state database ${db.location}: ${name} key ${JSON.stringify(diskKey)}: ${err.message}; ` +
              'run that version again, or restore a backup made before the upgrade',
            { cause: err, details: { location: db.location, problem: 'too-new' } },
          );
        }
        throw corruptError(db.location, `${name} key ${JSON.stringify(diskKey)}: ${detailOf(err)}`, err);
      }
    }
  }
  // An entity with only one half can only come from damage (or a bug): commit never writes one.
  const problems = index.finishLoad();
  if (problems.length > 0) throw corruptError(db.location, problems.slice(0, 3).join('; '));
  return index;
}

/** Turns what level throws from a write into a typed error (exported for its test). */
export function levelWriteError(location: string, err: unknown): CrispError {
  const code = typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
  const detail = detailOf(err);
  if (code === 'LEVEL_DATABASE_NOT_OPEN') {
    return new UnavailableError(`state database ${location} is not open`, { cause: err });
  }
  if (/No space left on device/i.test(detail)) {
    return new ResourceExhaustedError(`state database ${location}: no space left on device`, { cause: err });
  }
  return new InternalError(`state database ${location}: write failed (${detail})`, { cause: err });
}
