import assert from 'node:assert/strict';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { hostCgroups, hugepageSizeName, hugepageSizes } from './cgroup-host.js';

describe('cgroup-host', () => {
  const dirs: string[] = [];
  const tree = async (files: string[]): Promise<string> => {
    const root = await mkdtemp(join(tmpdir(), 'crisp-cgroups-'));
    dirs.push(root);
    for (const f of files) {
      await mkdir(f.endsWith('/') ? join(root, f) : join(root, f, '..'), { recursive: true });
      if (!f.endsWith('/'))
        await writeFile(join(root, f), f.endsWith('cgroup.controllers') ? 'cpu memory hugetlb pids\n' : '');
    }
    return root;
  };
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('names page sizes as Kubernetes does', async () => {
    assert.equal(hugepageSizeName(2048), '2MB');
    assert.equal(hugepageSizeName(1048576), '1GB');
    assert.equal(hugepageSizeName(64), '64KB');
    const dir = await tree(['hugepages-1048576kB/x', 'hugepages-2048kB/x', 'other/x']);
    assert.deepEqual(await hugepageSizes(dir), ['2MB', '1GB']);
    assert.deepEqual(await hugepageSizes(join(dir, 'absent')), []);
  });

  it('reads a v1 (hybrid) host: memsw for swap, a mounted hugetlb hierarchy', async () => {
    const root = await tree(['memory/memory.memsw.limit_in_bytes', 'pids/pids.max']);
    const facts = await hostCgroups(root, join(root, 'none'));
    assert.deepEqual(facts, { version: 1, swap: true, hugetlb: false, hugepageSizes: [] });
    const bare = await tree(['memory/memory.limit_in_bytes', 'hugetlb/']);
    assert.deepEqual(await hostCgroups(bare, join(bare, 'none')), {
      version: 1,
      swap: false,
      hugetlb: true,
      hugepageSizes: [],
    });
  });

  it('reads a v2 host: its controllers, swap files in a child cgroup', async () => {
    const root = await tree(['cgroup.controllers', 'init.scope/memory.max', 'init.scope/memory.swap.max']);
    assert.deepEqual(await hostCgroups(root, join(root, 'none')), {
      version: 2,
      swap: true,
      hugetlb: true,
      hugepageSizes: [],
    });
  });

  it('reads this node', async () => {
    const facts = await hostCgroups();
    const unified = await access('/sys/fs/cgroup/cgroup.controllers').then(
      () => true,
      () => false,
    );
    assert.equal(facts.version, unified ? 2 : 1);
  });
});
