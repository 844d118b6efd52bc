import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  AlreadyExistsError,
  CanceledError,
  FailedPreconditionError,
  InternalError,
  ResourceExhaustedError,
  UnavailableError,
} from '../errors.js';
import { StoreBatch, type StoreOp } from './batch.js';
import { openStateDb, sublevelNames } from './db.js';
import { T0, containerConfig, image, intent, sandboxConfig, testId, withTempDir } from './fixtures.js';
import type { JsonValue, RecordInput } from './records.js';
import { LevelStateStore, levelWriteError, type LevelStateStoreOptions } from './state-store.js';

const SB = testId('sandbox-1');
const CT = testId('container-1');
const IMG = `sha256:${testId('image-1')}`;
const INT = testId('intent-1');

async function openStore(location: string, options?: LevelStateStoreOptions): Promise<LevelStateStore> {
  const store = new LevelStateStore(location, options);
  await store.open();
  return store;
}

/** One of everything: a sandbox with a container, an image, two names and an intent. */
function populate(): StoreBatch {
  return new StoreBatch()
    .putSandboxConfig(sandboxConfig(SB))
    .putSandboxState(SB, { state: 'ready', updatedAt: T0 })
    .putName('web_default_uid-web_0', { kind: 'sandbox', id: SB })
    .putContainerConfig(containerConfig(CT, SB))
    .putContainerState(CT, { state: 'running', pid: 4242, startedAt: T0, updatedAt: T0 })
    .putName('nginx_web_default_uid-web_0', { kind: 'container', id: CT })
    .putImage(image(IMG))
    .putIntent(intent(INT, CT));
}

/** Every key in every sublevel, read straight from LevelDB. */
async function keysOnDisk(location: string): Promise<string[]> {
  const db = await openStateDb(location);
  try {
    const keys: string[] = [];
    for (const name of sublevelNames) {
      if (name === 'meta') continue;
      for (const key of await db.sublevels[name].keys().all()) keys.push(`${name}/${key}`);
    }
    return keys.sort();
  } finally {
    await db.close();
  }
}

/** A store whose disk writes wait for `release()` or fail, to watch what happens meanwhile. */
class ControlledStore extends LevelStateStore {
  writesStarted = 0;
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  #entered: (() => void) | undefined;
  failWith: Error | undefined;

  /** Makes the next writes wait; resolves `entered` once one has reached the disk step. */
  hold(): { entered: Promise<void>; release: () => void } {
    this.#gate = new Promise<void>((resolve) => (this.#open = resolve));
    const entered = new Promise<void>((resolve) => (this.#entered = resolve));
    return {
      entered,
      release: () => {
        this.#open?.();
        this.#gate = undefined;
      },
    };
  }

  protected override async writeBatch(ops: readonly StoreOp[]): Promise<void> {
    this.writesStarted++;
    this.#entered?.();
    if (this.#gate !== undefined) await this.#gate;
    if (this.failWith !== undefined) throw this.failWith;
    await super.writeBatch(ops);
  }
}

describe('LevelStateStore', () => {
  it('keeps every kind of record across close and open, and lists them from memory', async () => {
    await withTempDir(async (dir) => {
      const location = path.join(dir, 'state');
      const first = await openStore(location);
      await first.commit(populate());
      const sandboxBefore = first.getSandbox(SB);
      const containerBefore = first.getContainer(CT);
      await first.close();

      const store = await openStore(location);
      try {
        // Reads are synchronous: they are answered from the index loaded at open.
        const sandbox = store.getSandbox(SB);
        assert.ok(sandbox !== undefined);
        assert.deepEqual(sandbox, sandboxBefore, 'memory before close equals what a reload reads');
        assert.deepEqual(sandbox.config, { v: 1, ...sandboxConfig(SB) });
        assert.deepEqual(sandbox.state, { v: 1, state: 'ready', updatedAt: T0 });

        const container = store.getContainer(CT);
        assert.ok(container !== undefined);
        assert.deepEqual(container, containerBefore);
        assert.equal(container.state.pid, 4242);
        assert.equal(container.config.sandboxId, SB);

        assert.deepEqual(store.getImage(IMG), { v: 1, ...image(IMG) });
        assert.deepEqual(store.getIntent(INT), { v: 1, ...intent(INT, CT) });
        assert.deepEqual(store.getName('web_default_uid-web_0'), {
          v: 1,
          name: 'web_default_uid-web_0',
          kind: 'sandbox',
          id: SB,
        });
        assert.equal(store.getName('nginx_web_default_uid-web_0')?.id, CT);

        assert.deepEqual(
          store.listSandboxes().map((s) => s.config.id),
          [SB],
        );
        assert.deepEqual(
          store.listContainers().map((c) => c.config.id),
          [CT],
        );
        assert.deepEqual(
          store.listImages().map((i) => i.id),
          [IMG],
        );
        assert.deepEqual(
          store.listIntents().map((i) => i.id),
          [INT],
        );
        assert.equal(store.listNames().length, 2);
        assert.deepEqual(store.stats(), { sandboxes: 1, containers: 1, images: 1, names: 2, intents: 1 });
        assert.equal(store.schemaVersion, 1);
        assert.equal(store.getSandbox('nope'), undefined);
      } finally {
        await store.close();
      }
      assert.deepEqual(await keysOnDisk(location), [
        `containers/${CT}/config`,
        `containers/${CT}/state`,
        `images/${IMG}`,
        `intents/${INT}`,
        'names/nginx_web_default_uid-web_0',
        'names/web_default_uid-web_0',
        `sandboxes/${SB}/config`,
        `sandboxes/${SB}/state`,
      ]);
    });
  });

  it('hands out frozen records, so readers cannot change the index', async () => {
    await withTempDir(async (dir) => {
      const store = await openStore(dir);
      try {
        await store.commit(populate());
        const sandbox = store.getSandbox(SB);
        assert.ok(sandbox !== undefined);
        assert.ok(
          Object.isFrozen(sandbox) &&
            Object.isFrozen(sandbox.config) &&
            Object.isFrozen(sandbox.config.labels),
        );
        assert.throws(() => {
          (sandbox.config.labels as Record<string, string>)['app'] = 'evil';
        }, TypeError);
        const img = store.getImage(IMG);
        assert.ok(img !== undefined && Object.isFrozen(img.repoTags));
      } finally {
        await store.close();
      }
    });
  });

  describe('commit', () => {
    it('writes nothing when one value cannot be encoded (BigInt), on disk or in memory', async () => {
      await withTempDir(async (dir) => {
        const store = await openStore(dir);
        await store.commit(new StoreBatch().putImage(image(IMG)));
        const statsBefore = store.stats();
        const imageBefore = store.getImage(IMG);

        const bad = new StoreBatch()
          .putSandboxConfig(sandboxConfig(SB))
          .putSandboxState(SB, { state: 'ready', updatedAt: T0 })
          .putName('web', { kind: 'sandbox', id: SB })
          .delImage(IMG)
          .putIntent({ ...intent(INT, SB), data: { size: 10n } as unknown as JsonValue });
        await assert.rejects(store.commit(bad), (err: unknown) => {
          assert.ok(err instanceof InternalError);
          assert.match(err.message, /intent .* not encodable as JSON \(.*BigInt/);
          return true;
        });

        assert.deepEqual(store.stats(), statsBefore);
        assert.equal(store.getSandbox(SB), undefined);
        assert.equal(store.getName('web'), undefined);
        assert.equal(store.getImage(IMG), imageBefore);
        await store.close();

        assert.deepEqual(await keysOnDisk(dir), [`images/${IMG}`]);
        const reopened = await openStore(dir);
        assert.deepEqual(reopened.stats(), statsBefore);
        await reopened.close();
      });
    });

    it('writes nothing when one value is circular', async () => {
      await withTempDir(async (dir) => {
        const store = await openStore(dir);
        const loop: Record<string, unknown> = {};
        loop['self'] = loop;
        const bad = new StoreBatch()
          .putImage(image(IMG))
          .putIntent({ ...intent(INT, SB), data: loop as unknown as JsonValue });
        await assert.rejects(store.commit(bad), /not encodable as JSON \(.*circular/i);
        assert.deepEqual(store.stats(), { sandboxes: 0, containers: 0, images: 0, names: 0, intents: 0 });
        await store.close();
        assert.deepEqual(await keysOnDisk(dir), []);
      });
    });

    it('updates memory only after the disk write has resolved', async () => {
      await withTempDir(async (dir) => {
        const store = new ControlledStore(dir);
        await store.open();
        try {
          const { entered, release } = store.hold();
          const pending = store.commit(populate());
          await entered;
          // The batch is at the disk step: nobody may see it yet.
          assert.equal(store.getSandbox(SB), undefined);
          assert.equal(store.getName('web_default_uid-web_0'), undefined);
          assert.equal(store.stats().sandboxes, 0);
          release();
          await pending;
          assert.equal(store.getSandbox(SB)?.state.state, 'ready');
        } finally {
          await store.close();
        }
      });
    });

    it('leaves memory unchanged and throws a typed error when the disk write fails', async () => {
      await withTempDir(async (dir) => {
        const store = new ControlledStore(dir);
        await store.open();
        try {
          store.failWith = Object.assign(new Error('IO error: disk on fire'), { code: 'LEVEL_IO_ERROR' });
          await assert.rejects(store.commit(populate()), InternalError);
          assert.deepEqual(store.stats(), { sandboxes: 0, containers: 0, images: 0, names: 0, intents: 0 });
          // The store goes on working.
          store.failWith = undefined;
          await store.commit(populate());
          assert.equal(store.stats().sandboxes, 1);
        } finally {
          await store.close();
        }
      });
    });

    it('maps what level throws on a write to typed errors', () => {
      const levelError = (code: string, message: string) => Object.assign(new Error(message), { code });
      const notOpen = levelWriteError('/s', levelError('LEVEL_DATABASE_NOT_OPEN', 'Database is not open'));
      assert.ok(notOpen instanceof UnavailableError);
      const full = levelWriteError(
        '/s',
        levelError('LEVEL_IO_ERROR', 'IO error: /s/000005.log: No space left on device'),
      );
      assert.ok(full instanceof ResourceExhaustedError);
      assert.equal(full.message, 'state database /s: no space left on device');
      const other = levelWriteError(
        '/s',
        levelError('LEVEL_IO_ERROR', 'IO error: /s/000005.log: Input/output error'),
      );
      assert.ok(other instanceof InternalError);
      assert.equal(
        other.message,
        'state database /s: write failed (IO error: /s/000005.log: Input/output error)',
      );
    });

    it('applies commits in the order they were called', async () => {
      await withTempDir(async (dir) => {
        const store = await openStore(dir);
        await store.commit(populate());
        const states = ['paused', 'running', 'stopped', 'exited'] as const;
        await Promise.all(
          states.map((state) =>
            store.commit(new StoreBatch().putContainerState(CT, { state, updatedAt: T0 })),
          ),
        );
        assert.equal(store.getContainer(CT)?.state.state, 'exited');
        await store.close();
        const reopened = await openStore(dir);
        assert.equal(reopened.getContainer(CT)?.state.state, 'exited');
        await reopened.close();
      });
    });

    it('snapshots values when commit is called', async () => {
      await withTempDir(async (dir) => {
        const store = await openStore(dir);
        const labels: Record<string, string> = { app: 'web' };
        const pending = store.commit(
          new StoreBatch()
            .putSandboxConfig({ ...sandboxConfig(SB), labels })
            .putSandboxState(SB, { state: 'creating', updatedAt: T0 }),
        );
        labels['app'] = 'changed-after-commit';
        await pending;
        assert.deepEqual(store.getSandbox(SB)?.config.labels, { app: 'web' });
        await store.close();
      });
    });

    it('drops undefined optional fields, so memory equals what a reload reads', async () => {
      await withTempDir(async (dir) => {
        const store = await openStore(dir);
        await store.commit(populate());
        const stopped: RecordInput<'containerState'> = {
          state: 'stopped',
          pid: undefined,
          exitCode: 137,
          reason: 'OOMKilled',
          finishedAt: T0,
          updatedAt: T0,
        };
        await store.commit(new StoreBatch().putContainerState(CT, stopped));
        const inMemory = store.getContainer(CT)?.state;
        assert.ok(inMemory !== undefined && !('pid' in inMemory));
        await store.close();
        const reopened = await openStore(dir);
        assert.deepEqual(reopened.getContainer(CT)?.state, inMemory);
        await reopened.close();
      });
    });

    it('refuses a record that does not match its schema', async () => {
      await withTempDir(async (dir) => {
        const store = await openStore(dir);
        await store.commit(populate());
        const bogus = {
          state: 'sleeping',
          updatedAt: 'yesterday',
        } as unknown as RecordInput<'containerState'>;
        await assert.rejects(store.commit(new StoreBatch().putContainerState(CT, bogus)), (err: unknown) => {
          assert.ok(err instanceof InternalError);
          assert.match(err.message, /^cannot store container ".*" state: state: .*; updatedAt: /);
          return true;
        });
        assert.equal(store.getContainer(CT)?.state.state, 'running');
        await assert.rejects(
          store.commit(
            new StoreBatch()
              .putContainerConfig(containerConfig('a/b', SB))
              .putContainerState('a/b', { state: 'created', updatedAt: T0 }),
          ),
          /an id must be non-empty, without '\/'/,
        );
        await assert.rejects(
          store.commit(new StoreBatch().putImage({ ...image(IMG), id: 'a/b' })),
          /cannot store image "a\/b": id: must not contain '\/'/,
        );
        await store.close();
      });
    });

    it('refuses a batch that would leave a config without its state, or a state without its config', async () => {
      await withTempDir(async (dir) => {
        const store = await openStore(dir);
        await assert.rejects(
          store.commit(new StoreBatch().putSandboxConfig(sandboxConfig(SB))),
          /batch would leave sandbox ".*" with a config but no state/,
        );
        await assert.rejects(
          store.commit(new StoreBatch().putContainerState(CT, { state: 'created', updatedAt: T0 })),
          /batch would leave container ".*" with a state but no config/,
        );
        await store.commit(populate());
        // Replacing one half of an existing entity is fine; deleting the whole of it too.
        await store.commit(new StoreBatch().putSandboxState(SB, { state: 'notready', updatedAt: T0 }));
        await store.commit(new StoreBatch().delContainer(CT).delName('nginx_web_default_uid-web_0'));
        assert.equal(store.getContainer(CT), undefined);
        assert.deepEqual(store.stats(), { sandboxes: 1, containers: 0, images: 1, names: 1, intents: 1 });
        await store.close();
        assert.ok(!(await keysOnDisk(dir)).some((k) => k.startsWith('containers/')));
      });
    });

    it('keeps a name for its owner', async () => {
      await withTempDir(async (dir) => {
        const store = await openStore(dir);
        await store.commit(populate());
        const other = testId('sandbox-2');
        const steal = new StoreBatch()
          .putSandboxConfig(sandboxConfig(other))
          .putSandboxState(other, { state: 'creating', updatedAt: T0 })
          .putName('web_default_uid-web_0', { kind: 'sandbox', id: other });
        await assert.rejects(store.commit(steal), (err: unknown) => {
          assert.ok(err instanceof AlreadyExistsError);
          assert.match(
            err.message,
            new RegExp(`^name "web_default_uid-web_0" already exists: reserved for sandbox ${SB}$`),
          );
          return true;
        });
        assert.equal(store.getSandbox(other), undefined, 'the rest of the batch is not applied either');

        // The owner may put it again; a batch that releases it first may hand it over.
        await store.commit(new StoreBatch().putName('web_default_uid-web_0', { kind: 'sandbox', id: SB }));
        await store.commit(
          new StoreBatch()
            .delName('web_default_uid-web_0')
            .putSandboxConfig(sandboxConfig(other))
            .putSandboxState(other, { state: 'creating', updatedAt: T0 })
            .putName('web_default_uid-web_0', { kind: 'sandbox', id: other }),
        );
        assert.equal(store.getName('web_default_uid-web_0')?.id, other);
        await store.close();
      });
    });

    it('commits nothing for an empty batch', async () => {
      await withTempDir(async (dir) => {
        const store = new ControlledStore(dir);
        await store.open();
        await store.commit(new StoreBatch());
        assert.equal(store.writesStarted, 0);
        await store.close();
      });
    });

    it('refuses commits once closed, after finishing the ones already called', async () => {
      await withTempDir(async (dir) => {
        const store = await openStore(dir);
        const pending = store.commit(populate());
        const closing = store.close();
        await assert.rejects(store.commit(new StoreBatch().delImage(IMG)), CanceledError);
        await pending;
        await closing;
        const reopened = await openStore(dir);
        assert.equal(reopened.stats().images, 1);
        await reopened.close();
      });
    });
  });

  describe('open', () => {
    it('refuses a record it cannot decode, naming the key', async () => {
      await withTempDir(async (dir) => {
        const db = await openStateDb(dir);
        await db.sublevels.sandboxes.put(`${SB}/config`, { v: 1, id: SB, name: 42 });
        await db.sublevels.sandboxes.put(`${SB}/state`, { v: 1, state: 'ready', updatedAt: T0 });
        await db.close();
        await assert.rejects(openStore(dir), (err: unknown) => {
          assert.ok(err instanceof FailedPreconditionError);
          assert.match(
            err.message,
            new RegExp(`^state database ${dir} is corrupt \\(sandboxes key "${SB}/config": `),
          );
          assert.match(err.message, /move it aside/);
          return true;
        });
      });
    });

    it('refuses a value that is not JSON', async () => {
      await withTempDir(async (dir) => {
        const db = await openStateDb(dir);
        await db.root.put('!images!sha256:x', '{not json');
        await db.close();
        await assert.rejects(openStore(dir), /is corrupt \(reading images: /);
      });
    });

    it('refuses a sandbox with only one half', async () => {
      await withTempDir(async (dir) => {
        const db = await openStateDb(dir);
        await db.sublevels.sandboxes.put(`${SB}/state`, { v: 1, state: 'ready', updatedAt: T0 });
        await db.close();
        await assert.rejects(openStore(dir), /is corrupt \(sandbox ".*" has a state but no config\)/);
      });
    });

    it('refuses a record filed under another key', async () => {
      await withTempDir(async (dir) => {
        const db = await openStateDb(dir);
        await db.sublevels.images.put('sha256:other', { v: 1, ...image(IMG) });
        await db.close();
        await assert.rejects(openStore(dir), /is corrupt \(images key "sha256:other": the record names/);
      });
    });

    it('refuses a record written by a newer crisp', async () => {
      await withTempDir(async (dir) => {
        const db = await openStateDb(dir);
        await db.sublevels.images.put(IMG, { ...image(IMG), v: 2 });
        await db.close();
        await assert.rejects(openStore(dir), (err: unknown) => {
          assert.ok(err instanceof FailedPreconditionError);
          assert.match(err.message, /record version 2 is newer than this crisp knows \(1\)/);
          return true;
        });
      });
    });

    it('refuses to be opened twice, and reads before open', async () => {
      await withTempDir(async (dir) => {
        const store = new LevelStateStore(dir);
        assert.throws(() => store.listSandboxes(), InternalError);
        await store.open();
        await assert.rejects(store.open(), InternalError);
        await store.close();
      });
    });

    it('releases the database when loading fails', async () => {
      await withTempDir(async (dir) => {
        const db = await openStateDb(dir);
        await db.sublevels.names.put('x', { v: 1 });
        await db.close();
        await assert.rejects(openStore(dir), FailedPreconditionError);
        const again = await openStateDb(dir);
        await again.close();
      });
    });
  });
});
