import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { FailedPreconditionError, InternalError, UnavailableError } from '../errors.js';
import {
  CURRENT_SCHEMA_VERSION,
  SCHEMA_VERSION_KEY,
  openStateDb,
  type Migration,
  type StateDb,
} from './db.js';
import { withTempDir } from './fixtures.js';

/** A closed database at `location` holding one key, for the damage tests. */
async function makeDb(location: string): Promise<void> {
  const db = await openStateDb(location);
  await db.sublevels.sandboxes.put('abc/config', { hello: 'world' });
  await db.close();
}

/** Every file in a directory with its contents, to prove a refused open left them alone. */
async function snapshot(
  dir: string,
  skip: (name: string) => boolean = isLevelDbLog,
): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const name of (await fs.readdir(dir)).sort()) {
    if (skip(name)) continue;
    files.set(name, (await fs.readFile(path.join(dir, name))).toString('base64'));
  }
  return files;
}

/** LevelDB's own text log (LOG, LOG.old) is rotated by any open attempt; it holds no data. */
function isLevelDbLog(name: string): boolean {
  return name === 'LOG' || name === 'LOG.old' || name === 'LOCK';
}

function corruptMessage(location: string): RegExp {
  const escaped = location.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(
    `^state database ${escaped} is corrupt \\(.+\\): move it aside to start with an empty state \\(kubelet recreates pods\\) or restore a backup$`,
  );
}

async function schemaVersionOnDisk(db: StateDb): Promise<unknown> {
  return db.sublevels.meta.get(SCHEMA_VERSION_KEY);
}

describe('openStateDb', () => {
  it('creates a database where the directory is absent, with its parents, at the current version', async () => {
    await withTempDir(async (dir) => {
      const location = path.join(dir, 'root', 'state');
      const db = await openStateDb(location);
      try {
        assert.equal(db.schemaVersion, CURRENT_SCHEMA_VERSION);
        assert.equal(await schemaVersionOnDisk(db), 1);
        assert.deepEqual(Object.keys(db.sublevels).sort(), [
          'containers',
          'images',
          'intents',
          'meta',
          'names',
          'sandboxes',
        ]);
        assert.equal((await fs.stat(location)).mode & 0o777, 0o700);
      } finally {
        await db.close();
      }
      assert.ok((await fs.readdir(location)).includes('CURRENT'));
    });
  });

  it('creates a database in an existing empty directory', async () => {
    await withTempDir(async (dir) => {
      const db = await openStateDb(dir);
      assert.equal(db.schemaVersion, 1);
      await db.close();
    });
  });

  it('reopens an existing database and keeps its keys', async () => {
    await withTempDir(async (dir) => {
      await makeDb(dir);
      const db = await openStateDb(dir);
      try {
        assert.deepEqual(await db.sublevels.sandboxes.get('abc/config'), { hello: 'world' });
      } finally {
        await db.close();
      }
    });
  });

  describe('migrations', () => {
    it('runs a migration once and bumps the version', async () => {
      await withTempDir(async (dir) => {
        await makeDb(dir);
        let runs = 0;
        const toV2: Migration = {
          from: 1,
          to: 2,
          async run(db) {
            runs++;
            assert.equal(db.schemaVersion, 1, 'the migration sees the version it migrates from');
            await db.sublevels.sandboxes.put('abc/config', { hello: 'migrated' });
          },
        };
        const opts = { schemaVersion: 2, migrations: [toV2] };

        const first = await openStateDb(dir, opts);
        assert.equal(runs, 1);
        assert.equal(first.schemaVersion, 2);
        assert.equal(await schemaVersionOnDisk(first), 2);
        assert.deepEqual(await first.sublevels.sandboxes.get('abc/config'), { hello: 'migrated' });
        await first.close();

        const second = await openStateDb(dir, opts);
        assert.equal(runs, 1, 'not run again at the next open');
        assert.equal(second.schemaVersion, 2);
        await second.close();
      });
    });

    it('applies a chain of migrations in order', async () => {
      await withTempDir(async (dir) => {
        await makeDb(dir);
        const order: string[] = [];
        const step = (from: number): Migration => ({
          from,
          to: from + 1,
          run: () => {
            order.push(`${from}->${from + 1}`);
            return Promise.resolve();
          },
        });
        // Listed out of order on purpose: each step is found by its `from`.
        const db = await openStateDb(dir, { schemaVersion: 3, migrations: [step(2), step(1)] });
        assert.deepEqual(order, ['1->2', '2->3']);
        assert.equal(await schemaVersionOnDisk(db), 3);
        await db.close();
      });
    });

    it('does not run migrations on a new database', async () => {
      await withTempDir(async (dir) => {
        let runs = 0;
        const db = await openStateDb(dir, {
          schemaVersion: 2,
          migrations: [
            {
              from: 1,
              to: 2,
              run: () => {
                runs++;
                return Promise.resolve();
              },
            },
          ],
        });
        assert.equal(runs, 0);
        assert.equal(await schemaVersionOnDisk(db), 2);
        await db.close();
      });
    });

    it('fails when no migration leads on, leaving the version and releasing the database', async () => {
      await withTempDir(async (dir) => {
        await makeDb(dir);
        await assert.rejects(openStateDb(dir, { schemaVersion: 2, migrations: [] }), (err: unknown) => {
          assert.ok(err instanceof InternalError);
          assert.match(err.message, /no migration from schema version 1 towards 2/);
          return true;
        });
        const db = await openStateDb(dir);
        assert.equal(db.schemaVersion, 1);
        await db.close();
      });
    });

    it('keeps the old version when a migration fails', async () => {
      await withTempDir(async (dir) => {
        await makeDb(dir);
        const failing: Migration = { from: 1, to: 2, run: () => Promise.reject(new Error('boom')) };
        await assert.rejects(
          openStateDb(dir, { schemaVersion: 2, migrations: [failing] }),
          (err: unknown) => {
            assert.ok(err instanceof InternalError);
            assert.match(err.message, /migration from schema version 1 to 2 failed \(boom\)/);
            return true;
          },
        );
        const db = await openStateDb(dir);
        assert.equal(await schemaVersionOnDisk(db), 1);
        await db.close();
      });
    });
  });

  it('refuses a database with a newer schema version than it knows', async () => {
    await withTempDir(async (dir) => {
      const newer = await openStateDb(dir, { schemaVersion: 2 });
      await newer.close();
      await assert.rejects(openStateDb(dir), (err: unknown) => {
        assert.ok(err instanceof FailedPreconditionError);
        assert.equal(
          err.message,
          `state database ${dir} has schema version 2 but this crisp knows at most 1: it was written by a ` +
            'newer crisp; run that version again, or restore a backup made before the upgrade',
        );
        return true;
      });
      // Refused without damage, and released: the newer code can still open it.
      const again = await openStateDb(dir, { schemaVersion: 2 });
      assert.equal(again.schemaVersion, 2);
      await again.close();
    });
  });

  describe('damage', () => {
    it('refuses a database whose CURRENT file is missing and leaves its files alone', async () => {
      await withTempDir(async (dir) => {
        const location = path.join(dir, 'state');
        await makeDb(location);
        await fs.rm(path.join(location, 'CURRENT'));
        const before = await snapshot(location, () => false);

        await assert.rejects(openStateDb(location), (err: unknown) => {
          assert.ok(err instanceof FailedPreconditionError);
          assert.match(err.message, corruptMessage(location));
          assert.match(err.message, /no CURRENT file/);
          assert.equal(err.details['problem'], 'corrupt');
          return true;
        });
        // Not even LevelDB's LOG was touched, and no empty database took its place.
        assert.deepEqual(await snapshot(location, () => false), before);
        assert.ok(!before.has('CURRENT'));
      });
    });

    it('refuses a database whose MANIFEST is garbage and does not replace it', async () => {
      await withTempDir(async (dir) => {
        const location = path.join(dir, 'state');
        await makeDb(location);
        const manifest = (await fs.readdir(location)).find((f) => f.startsWith('MANIFEST-'));
        assert.ok(manifest !== undefined);
        await fs.writeFile(path.join(location, manifest), 'this is not a manifest, this is garbage');
        const before = await snapshot(location);

        await assert.rejects(openStateDb(location), (err: unknown) => {
          assert.ok(err instanceof FailedPreconditionError);
          assert.match(err.message, corruptMessage(location));
          assert.match(err.message, /Corruption/);
          return true;
        });
        assert.deepEqual(await snapshot(location), before, 'data files unchanged');
        // And it is refused again: nothing was "repaired" into an empty database.
        await assert.rejects(openStateDb(location), FailedPreconditionError);
      });
    });

    it('refuses a database whose CURRENT names a MANIFEST that does not exist', async () => {
      await withTempDir(async (dir) => {
        await makeDb(dir);
        await fs.writeFile(path.join(dir, 'CURRENT'), 'MANIFEST-999999\n');
        await assert.rejects(openStateDb(dir), (err: unknown) => {
          assert.ok(err instanceof FailedPreconditionError);
          assert.match(err.message, corruptMessage(dir));
          return true;
        });
      });
    });

    it('refuses a non-empty directory that is not a LevelDB', async () => {
      await withTempDir(async (dir) => {
        await fs.writeFile(path.join(dir, 'notes.txt'), 'precious');
        await assert.rejects(openStateDb(dir), (err: unknown) => {
          assert.ok(err instanceof FailedPreconditionError);
          assert.match(err.message, corruptMessage(dir));
          return true;
        });
        assert.deepEqual(await fs.readdir(dir), ['notes.txt']);
      });
    });

    it('refuses a database that holds data but no schema version', async () => {
      await withTempDir(async (dir) => {
        await makeDb(dir);
        const db = await openStateDb(dir);
        await db.sublevels.meta.del(SCHEMA_VERSION_KEY);
        await db.close();
        await assert.rejects(openStateDb(dir), (err: unknown) => {
          assert.ok(err instanceof FailedPreconditionError);
          assert.match(err.message, corruptMessage(dir));
          assert.match(err.message, /holds data but no schema_version/);
          return true;
        });
      });
    });

    it('reports the write-ahead log damage LevelDB skips instead of failing', async () => {
      await withTempDir(async (dir) => {
        const db = await openStateDb(dir);
        for (let i = 0; i < 10; i++) await db.sublevels.images.put(`img-${i}`, { padding: 'x'.repeat(100) });
        assert.deepEqual(db.recoveryWarnings, []);
        await db.close();
        const log = (await fs.readdir(dir)).find((f) => f.endsWith('.log'));
        assert.ok(log !== undefined);
        const bytes = await fs.readFile(path.join(dir, log));
        bytes.fill(0x41, 200, 600);
        await fs.writeFile(path.join(dir, log), bytes);

        const damaged = await openStateDb(dir);
        try {
          assert.equal(damaged.recoveryWarnings.length, 1);
          assert.match(
            damaged.recoveryWarnings[0] ?? '',
            /^\(ignoring error\) .*\.log: dropping \d+ bytes; Corruption: /,
          );
        } finally {
          await damaged.close();
        }
      });
    });

    it('refuses a path that is a file', async () => {
      await withTempDir(async (dir) => {
        const file = path.join(dir, 'state');
        await fs.writeFile(file, 'x');
        await assert.rejects(openStateDb(file), /state database .*state is not a directory/);
      });
    });
  });

  describe('locking', () => {
    it('refuses a database this process already holds', async () => {
      await withTempDir(async (dir) => {
        const location = path.join(dir, 'state');
        const first = await openStateDb(location);
        try {
          await assert.rejects(openStateDb(location), (err: unknown) => {
            assert.ok(err instanceof UnavailableError);
            assert.equal(
              err.message,
              `state database ${location} is locked: is another crisp running with root_dir ${dir}?`,
            );
            assert.equal(err.details['problem'], 'locked');
            return true;
          });
          // The holder is unaffected.
          await first.sublevels.images.put('k', 1);
          assert.equal(await first.sublevels.images.get('k'), 1);
        } finally {
          await first.close();
        }
        const after = await openStateDb(location);
        await after.close();
      });
    });

    it('refuses a database another process holds', async () => {
      await withTempDir(async (dir) => {
        const location = path.join(dir, 'state');
        await makeDb(location);
        const child = await holdInChild(location);
        try {
          await assert.rejects(openStateDb(location), (err: unknown) => {
            assert.ok(err instanceof UnavailableError);
            assert.match(err.message, /is locked: is another crisp running with root_dir/);
            return true;
          });
        } finally {
          child.kill('SIGKILL');
          await once(child, 'exit');
        }
        // The kernel released the lock with the process.
        const db = await openStateDb(location);
        await db.close();
      });
    });
  });
});

/** Starts a node process that opens `location` with level and keeps it open until killed. */
async function holdInChild(location: string): Promise<ChildProcess> {
  const levelPath = createRequire(import.meta.url).resolve('level');
  const script = `
    const { Level } = require(${JSON.stringify(levelPath)});
    const db = new Level(${JSON.stringify(location)});
    db.open({ createIfMissing: false }).then(
      () => { process.stdout.write('ready\\n'); setInterval(() => {}, 1 << 30); },
      (err) => { console.error(err); process.exit(1); },
    );`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stdout = child.stdout;
  const ready = new Promise<void>((resolve, reject) => {
    stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    child.once('exit', (code) => {
      reject(new Error(`lock holder exited early with code ${String(code)}`));
    });
  });
  await ready;
  return child;
}
