import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { AgedEntry, OrphanCollector, OrphanKind } from '../util/orphans.js';
import { PodOrphans } from './orphan-pods.js';
import { OrphanReconciler, staleTempFiles } from './orphan-reconciler.js';

const log = pino({ level: 'silent' });
const NOW = 5_000_000;

describe('OrphanReconciler', () => {
  it('applies the grace period to periodic passes only, counts removals and survives a failing collector', async () => {
    const ages: boolean[][] = [];
    const collectors: OrphanCollector[] = [
      {
        name: 'broken',
        collect: () => Promise.reject(new Error('boom')),
      },
      {
        name: 'ages',
        collect: (pass) => {
          ages.push([pass.isOld(NOW - 10_000), pass.isOld(NOW - 120_000)]);
          pass.removed('tmp', '/x');
          return Promise.resolve();
        },
      },
    ];
    const counted: OrphanKind[] = [];
    const r = new OrphanReconciler({
      collectors,
      log,
      now: () => NOW,
      graceMs: 60_000,
      onRemoved: (k) => counted.push(k),
    });
    assert.deepEqual(await r.runOnce({ startup: true }), [{ kind: 'tmp', what: '/x' }]);
    await r.runOnce();
    assert.deepEqual(ages, [
      [true, true],
      [false, true],
    ]);
    assert.deepEqual(counted, ['tmp', 'tmp']);
  });

  it('joins a pass under way', async () => {
    let runs = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const r = new OrphanReconciler({
      collectors: [
        {
          name: 'slow',
          collect: async () => {
            runs += 1;
            await gate;
          },
        },
      ],
      log,
    });
    const both = Promise.all([r.runOnce(), r.runOnce()]);
    release();
    await both;
    assert.equal(runs, 1);
  });
});

describe('staleTempFiles', () => {
  it('removes old matching files only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'crisp-stale-'));
    try {
      for (const name of ['.a-x.tmp', '.b-y.tmp', 'keep', 'c.tmp']) await writeFile(join(dir, name), '');
      const old = new Date(Date.now() - 3_600_000);
      await utimes(join(dir, '.a-x.tmp'), old, old);
      await utimes(join(dir, 'keep'), old, old);
      const removed: string[] = [];
      await staleTempFiles('t', dir, /^\..+\.tmp$/).collect({
        isOld: (m) => Date.now() - m > 60_000,
        removed: (_k, what) => removed.push(what),
        failed: () => assert.fail('nothing fails'),
      });
      assert.deepEqual(removed, [join(dir, '.a-x.tmp')]);
      assert.deepEqual((await readdir(dir)).sort(), ['.b-y.tmp', 'c.tmp', 'keep']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('PodOrphans', () => {
  it("removes unknown pods' dirs (counting their shm mounts) and old temp files of known pods", async () => {
    const [a, b] = ['a'.repeat(64), 'b'.repeat(64)];
    const e = (dir: string, name: string, mtimeMs: number, isDirectory: boolean): AgedEntry => ({
      name,
      path: `${dir}/${name}`,
      mtimeMs,
      isDirectory,
    });
    const removedPods: string[] = [];
    const removedFiles: string[] = [];
    const found: [OrphanKind, string][] = [];
    const collector = new PodOrphans({
      podsDir: '/r/pods',
      sandboxIds: () => new Set([a]),
      podFiles: {
        remove: (id) => {
          removedPods.push(id);
          return Promise.resolve();
        },
      },
      entries: (dir) =>
        Promise.resolve(
          dir === '/r/pods'
            ? [e(dir, a, 0, true), e(dir, b, 0, true), e(dir, 'junk', 0, true)]
            : [e(dir, 'hosts.tmp-0a1b', 0, false), e(dir, 'hosts', 0, false)],
        ),
      mounts: (dirs) => Promise.resolve(dirs[0] === `/r/pods/${b}` ? [`/r/pods/${b}/shm`] : []),
      removeFile: (path) => {
        removedFiles.push(path);
        return Promise.resolve();
      },
    });
    await collector.collect({
      isOld: () => true,
      removed: (k, what) => found.push([k, what]),
      failed: (k, what, err) => assert.fail(`${k} ${what}: ${String(err)}`),
    });
    assert.deepEqual(removedPods, [b]);
    assert.deepEqual(removedFiles, [`/r/pods/${a}/hosts.tmp-0a1b`]);
    assert.deepEqual(found, [
      ['tmp', `/r/pods/${a}/hosts.tmp-0a1b`],
      ['mount', `/r/pods/${b}/shm`],
      ['pod_dir', `/r/pods/${b}`],
    ]);
  });
});
