/**
 * Opens crisp's state database: one LevelDB directory (<root_dir>/state) split into sublevels, with a
 * schema version in `meta` and the migrations that bring an older database up to date.
 *
 * Opening never silently starts empty: a database is created only where the directory is absent or
 * empty. Anything else that is not a readable LevelDB is refused with a message that says what to do,
 * because an empty state on a node with running pods would leak every container and mount.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Level } from 'level';
import { FailedPreconditionError, InternalError, UnavailableError, type CrispError } from '../errors.js';

/** The schema (layout) version this code reads and writes. */
export const CURRENT_SCHEMA_VERSION = 1;

/** The key in `meta` that holds the schema version, as a JSON number. */
export const SCHEMA_VERSION_KEY = 'schema_version';

export const sublevelNames = ['meta', 'sandboxes', 'containers', 'images', 'names', 'intents'] as const;
export type SublevelName = (typeof sublevelNames)[number];

/** String keys; values are utf8 at the root and JSON in every sublevel. */
type RootDb = Level;

function jsonSublevel(root: RootDb, name: SublevelName) {
  return root.sublevel<string, unknown>(name, { valueEncoding: 'json' });
}

/** A sublevel with string keys and JSON values; values are `unknown` until decoded. */
export type JsonSublevel = ReturnType<typeof jsonSublevel>;

export interface StateDb {
  /** The directory, as given. */
  readonly location: string;
  /** The schema version the database is at (after migrations). */
  readonly schemaVersion: number;
  /** The whole database; write through `root.batch([...{ sublevel }])` to span sublevels atomically. */
  readonly root: RootDb;
  readonly sublevels: Readonly<Record<SublevelName, JsonSublevel>>;
  /**
   * Damage LevelDB skipped while recovering its write-ahead log at this open, from its own LOG file
   * (e.g. `.../000003.log: dropping 1116 bytes; Corruption: checksum mismatch`). LevelDB does not fail
   * the open for that (classic-level does not expose paranoid_checks), and the records in those bytes
   * are lost; the daemon should log these loudly. Empty when recovery was clean.
   */
  readonly recoveryWarnings: readonly string[];
  close(): Promise<void>;
}

/**
 * Moves a database from schema version `from` to `to`. It runs after the database is open and before
 * anything reads it; the version is bumped only after `run` resolves, so `run` must be safe to repeat
 * (a crash between the two runs it again at the next start).
 */
export interface Migration {
  readonly from: number;
  readonly to: number;
  run(db: StateDb): Promise<void>;
}

/** The migrations crisp ships, in order. None yet: schema version 1 is the first. */
export const migrations: readonly Migration[] = [];

export interface OpenStateDbOptions {
  /** Replaces the shipped migrations (tests). */
  migrations?: readonly Migration[];
  /** The version to migrate to and to stamp on a new database; CURRENT_SCHEMA_VERSION by default (tests). */
  schemaVersion?: number;
}

/**
 * Opens (or, if `location` is absent or an empty directory, creates) the state database and brings
 * it to the current schema version. Throws:
 * - UnavailableError when another process (or another handle in this one) holds the database: the
 *   condition goes away when the other crisp stops, so a restart by systemd may succeed;
 * - FailedPreconditionError when the database is corrupt, not a LevelDB, unreadable or newer than
 *   this code: a person has to act, and retrying without that never helps;
 * - InternalError when a migration is missing or fails.
 */
export async function openStateDb(location: string, opts: OpenStateDbOptions = {}): Promise<StateDb> {
  const target = opts.schemaVersion ?? CURRENT_SCHEMA_VERSION;
  const create = await isAbsentOrEmpty(location);
  if (create) {
    await fs.mkdir(location, { recursive: true, mode: 0o700 });
  } else if (!(await exists(path.join(location, 'CURRENT')))) {
    // Checked here rather than left to LevelDB, which would rotate its LOG files in a directory that
    // may hold someone's only copy of the state.
    throw corruptError(location, 'no CURRENT file: not a LevelDB database, or its creation was interrupted');
  }

  // Level opens itself on the next tick with default options (createIfMissing: true) unless open() is
  // called first, so nothing may be awaited between the constructor and open().
  const root: RootDb = new Level(location, { createIfMissing: create });
  try {
    await root.open({ createIfMissing: create, errorIfExists: false });
  } catch (err) {
    throw openError(location, err);
  }

  const sublevels = {
    meta: jsonSublevel(root, 'meta'),
    sandboxes: jsonSublevel(root, 'sandboxes'),
    containers: jsonSublevel(root, 'containers'),
    images: jsonSublevel(root, 'images'),
    names: jsonSublevel(root, 'names'),
    intents: jsonSublevel(root, 'intents'),
  } satisfies Record<SublevelName, JsonSublevel>;

  let schemaVersion = 0;
  const db: StateDb = {
    location,
    get schemaVersion() {
      return schemaVersion;
    },
    root,
    sublevels,
    recoveryWarnings: create ? [] : await readRecoveryWarnings(location),
    close: () => root.close(),
  };

  try {
    schemaVersion = await readSchemaVersion(db, target);
    while (schemaVersion < target) {
      schemaVersion = await migrateOnce(db, schemaVersion, target, opts.migrations ?? migrations);
    }
  } catch (err) {
    await root.close().catch(() => undefined);
    throw err;
  }
  return db;
}

/** Reads the stored version, stamping `target` on a database that has no keys at all yet. */
async function readSchemaVersion(db: StateDb, target: number): Promise<number> {
  const stored = await db.sublevels.meta.get(SCHEMA_VERSION_KEY).catch((err: unknown) => {
    throw corruptError(db.location, `cannot read ${SCHEMA_VERSION_KEY}: ${detailOf(err)}`);
  });
  if (stored === undefined) {
    const anyKey = await db.root.keys({ limit: 1 }).all();
    if (anyKey.length > 0) {
      throw corruptError(db.location, `it holds data but no ${SCHEMA_VERSION_KEY}`);
    }
    // New (or created but never written, if a crash came right after creation).
    await writeSchemaVersion(db, target);
    return target;
  }
  if (typeof stored !== 'number' || !Number.isInteger(stored) || stored < 1) {
    throw corruptError(db.location, `${SCHEMA_VERSION_KEY} is ${JSON.stringify(stored)}`);
  }
  if (stored > target) {
    throw new FailedPreconditionError(
      `state database ${db.location} has schema version ${stored} but this crisp knows at most ${target}: ` +
        'it was written by a newer crisp; run that version again, or restore a backup made before the upgrade',
      { details: { location: db.location, schemaVersion: stored, knownVersion: target } },
    );
  }
  return stored;
}

async function migrateOnce(
  db: StateDb,
  from: number,
  target: number,
  list: readonly Migration[],
): Promise<number> {
  const step = list.find((m) => m.from === from);
  if (step === undefined || step.to <= from || step.to > target) {
    throw new InternalError(
      `state database ${db.location}: no migration from schema version ${from} towards ${target}`,
      { details: { location: db.location, from, target } },
    );
  }
  try {
    await step.run(db);
  } catch (err) {
    throw new InternalError(
      `state database ${db.location}: migration from schema version ${from} to ${step.to} failed ` +
        `(${detailOf(err)}); the database is still at version ${from}`,
      { cause: err, details: { location: db.location, from, to: step.to } },
    );
  }
  await writeSchemaVersion(db, step.to);
  return step.to;
}

/** Through the root's batch: the sublevel's own put() has no `sync` option in level's types. */
async function writeSchemaVersion(db: StateDb, version: number): Promise<void> {
  await db.root.batch<string, unknown>(
    [{ type: 'put', sublevel: db.sublevels.meta, key: SCHEMA_VERSION_KEY, value: version }],
    { sync: true },
  );
}

/** The lines of LevelDB's info log (LOG, rewritten at each open) that report skipped damage. */
async function readRecoveryWarnings(location: string): Promise<string[]> {
  let text: string;
  try {
    text = await fs.readFile(path.join(location, 'LOG'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => /\(ignoring error\)|Corruption/.test(line))
    .map((line) => line.replace(/^\S+\s+\S+\s+/, '')) // timestamp and thread id
    .slice(0, 20);
}

async function isAbsentOrEmpty(location: string): Promise<boolean> {
  try {
    const entries = await fs.readdir(location);
    return entries.length === 0;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return true;
    if (code === 'ENOTDIR') {
      throw new FailedPreconditionError(`state database ${location} is not a directory`, {
        cause: err,
        details: { location, problem: 'not-a-directory' },
      });
    }
    throw new FailedPreconditionError(`state database ${location} cannot be read (${detailOf(err)})`, {
      cause: err,
      details: { location, problem: 'unreadable' },
    });
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Classifies what level threw from open(): it wraps the LevelDB status in a LEVEL_DATABASE_NOT_OPEN
 * error whose `cause` has code LEVEL_LOCKED ("IO error: lock <dir>/LOCK: already held by process"
 * within this process, "Resource temporarily unavailable" from another), LEVEL_CORRUPTION, or
 * LEVEL_IO_ERROR (e.g. CURRENT naming a MANIFEST that does not exist).
 */
function openError(location: string, err: unknown): CrispError {
  const inner = codeOf(err) === 'LEVEL_DATABASE_NOT_OPEN' && err instanceof Error ? err.cause : err;
  const code = codeOf(inner);
  const detail = detailOf(inner);
  if (code === 'LEVEL_LOCKED') {
    return new UnavailableError(
      `state database ${location} is locked: is another crisp running with root_dir ${path.dirname(location)}?`,
      { cause: err, details: { location, problem: 'locked' } },
    );
  }
  if (
    code === 'LEVEL_CORRUPTION' ||
    (code === 'LEVEL_IO_ERROR' && /No such file or directory/.test(detail))
  ) {
    return corruptError(location, detail, err);
  }
  return new FailedPreconditionError(`state database ${location} cannot be opened (${detail})`, {
    cause: err,
    details: { location, problem: 'unopenable' },
  });
}

/** The message every kind of damage gets; state-store.ts uses it for records that fail to decode. */
export function corruptError(location: string, detail: string, cause?: unknown): FailedPreconditionError {
  return new FailedPreconditionError(
    `state database ${location} is corrupt (${detail}): move it aside to start with an empty state ` +
      '(kubelet recreates pods) or restore a backup',
    { cause, details: { location, problem: 'corrupt' } },
  );
}

function codeOf(err: unknown): unknown {
  return typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
}

function errnoCode(err: unknown): string | undefined {
  const code = codeOf(err);
  return typeof code === 'string' ? code : undefined;
}

export function detailOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
