import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FailedPreconditionError } from '../errors.js';
import { applyPodLimits, podCgroupPath, podCgroupWrites, podLimits, sharesToWeight } from './pod-cgroup.js';

describe('pod cgroup limits', () => {
  it('adds the overhead to set, limited values only', () => {
    assert.deepEqual(
      podLimits(
        { cpuShares: 512, cpuQuota: 50_000, cpuPeriod: 100_000, memoryLimitBytes: 100, cpusetCpus: '0' },
        { cpuShares: 10, cpuQuota: 5_000, memoryLimitBytes: 20 },
      ),
      { cpuShares: 522, cpuQuota: 55_000, cpuPeriod: 100_000, memoryLimitBytes: 120, cpusetCpus: '0' },
    );
    assert.deepEqual(podLimits({ cpuQuota: -1 }, { cpuQuota: 5_000, memoryLimitBytes: 20 }), {
      cpuQuota: -1,
    });
    assert.deepEqual(podLimits(undefined, { cpuShares: 10 }), {});
  });

  it('finds the cgroup path for both drivers', () => {
    assert.equal(podCgroupPath('cgroupfs', 'kubepods/burstable/pod1/'), '/kubepods/burstable/pod1/');
    assert.equal(podCgroupPath('cgroupfs', '/kubepods//pod1'), '/kubepods/pod1');
    assert.equal(
      podCgroupPath('systemd', 'kubepods-burstable-pod1.slice'),
      '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice',
    );
    assert.equal(podCgroupPath('systemd', '-.slice'), '/');
  });

  it('converts shares to a v2 weight as runc does', () => {
    assert.equal(sharesToWeight(2), 1);
    assert.equal(sharesToWeight(1024), 39);
    assert.equal(sharesToWeight(262_144), 10_000);
  });

  it('writes the v1 and v2 files, period before quota', () => {
    const limits = { cpuShares: 1024, cpuQuota: 50_000, cpuPeriod: 100_000, memoryLimitBytes: 64 };
    assert.deepEqual(podCgroupWrites(limits, 1, '/p'), [
      { controller: 'cpu', file: '/p/cpu.shares', value: '1024' },
      { controller: 'cpu', file: '/p/cpu.cfs_period_us', value: '100000' },
      { controller: 'cpu', file: '/p/cpu.cfs_quota_us', value: '50000' },
      { controller: 'memory', file: '/p/memory.limit_in_bytes', value: '64' },
    ]);
    assert.deepEqual(podCgroupWrites({ ...limits, cpuQuota: -1 }, 2, '/p'), [
      { controller: '', file: '/p/cpu.weight', value: '39' },
      { controller: '', file: '/p/cpu.max', value: 'max 100000' },
      { controller: '', file: '/p/memory.max', value: '64' },
    ]);
  });

  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('raises memsw before a larger memory limit, and names a missing cgroup', async () => {
    const root = await mkdtemp(join(tmpdir(), 'crisp-podcg-'));
    dirs.push(root);
    await mkdir(join(root, 'memory', 'pod'), { recursive: true });
    await writeFile(join(root, 'memory', 'pod', 'memory.memsw.limit_in_bytes'), '100\n');
    await writeFile(join(root, 'memory', 'pod', 'memory.limit_in_bytes'), '100\n');
    await applyPodLimits(root, 1, '/pod', { memoryLimitBytes: 200 });
    assert.equal(await readFile(join(root, 'memory', 'pod', 'memory.memsw.limit_in_bytes'), 'utf8'), '200');
    assert.equal(await readFile(join(root, 'memory', 'pod', 'memory.limit_in_bytes'), 'utf8'), '200');
    await applyPodLimits(root, 1, '/pod', { memoryLimitBytes: 150 });
    assert.equal(await readFile(join(root, 'memory', 'pod', 'memory.memsw.limit_in_bytes'), 'utf8'), '200');
    await assert.rejects(
      applyPodLimits(root, 1, '/gone', { cpuShares: 2 }),
      (err: unknown) => err instanceof FailedPreconditionError && err.message.includes('"/gone"'),
    );
  });
});
