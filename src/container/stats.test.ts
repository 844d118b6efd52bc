import assert from 'node:assert/strict';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { containerConfig, testId } from '../store/fixtures.js';
import type { StoredContainer } from '../store/state-store.js';
import { diskUsage } from '../util/disk-usage.js';
import {
  defaultInterface,
  locateCgroup,
  memoryFromV1,
  memoryFromV2,
  nanoCores,
  parentCgroup,
  parseCounter,
  parseKeyedCounters,
  parseNetDev,
  parseProcCgroup,
  readCgroupCounters,
  StatsReader,
  sumCounters,
  type StatsClock,
} from './stats.js';

// --- fixtures: what the kernel writes ----------------------------------------------------------

const V1_MEMORY_STAT = `cache 8192
rss 2097152
rss_huge 0
shmem 0
mapped_file 0
pgfault 1200
pgmajfault 3
inactive_anon 0
active_anon 2097152
inactive_file 4096
active_file 4096
hierarchical_memory_limit 9223372036854771712
total_cache 8192
total_rss 2097152
total_pgfault 1500
total_pgmajfault 4
total_inactive_file 4096
total_active_file 4096
`;

const V2_MEMORY_STAT = `anon 3145728
file 1048576
kernel 262144
shmem 0
inactive_anon 0
active_anon 3145728
inactive_file 524288
active_file 524288
pgfault 4242
pgmajfault 7
`;

const V2_CPU_STAT = `usage_usec 1234567
user_usec 1000000
system_usec 234567
nr_periods 0
nr_throttled 0
throttled_usec 0
`;

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     840      10    0    0    0     0          0         0      840      10    0    0    0     0       0          0
  eth0:12345678901   24941    2    0    0     0          0         0  3468258   20096    5    0    0     0       0          0
`;

const ID = testId('ctr-a');
const POD = testId('pod-a');

const PROC_CGROUP_V1 = `12:pids:/crisp/${ID}
11:cpu,cpuacct:/crisp/${ID}
4:memory:/crisp/${ID}
1:name=systemd:/user.slice
0::/
`;

const PROC_CGROUP_V2 = `0::/kubepods.slice/kubepods-pod1.slice/crisp-${ID}.scope
`;

describe('parsers', () => {
  it('parseCounter reads one number; "max" and junk are undefined', () => {
    assert.equal(parseCounter('123456789012345678901\n'), 123456789012345678901n);
    assert.equal(parseCounter('max\n'), undefined);
    assert.equal(parseCounter(''), undefined);
  });

  it('parseKeyedCounters reads memory.stat and cpu.stat', () => {
    const m = parseKeyedCounters(V2_CPU_STAT);
    assert.equal(m.get('usage_usec'), 1234567n);
    assert.equal(m.get('system_usec'), 234567n);
    assert.equal(parseKeyedCounters(V1_MEMORY_STAT).get('total_inactive_file'), 4096n);
  });

  it('parseProcCgroup: v1 controllers (joint mounts split), the v2 line, named hierarchies', () => {
    const v1 = parseProcCgroup(PROC_CGROUP_V1);
    assert.equal(v1.controllers.get('cpu'), `/crisp/${ID}`);
    assert.equal(v1.controllers.get('cpuacct'), `/crisp/${ID}`);
    assert.equal(v1.controllers.get('memory'), `/crisp/${ID}`);
    assert.equal(v1.controllers.get('name=systemd'), '/user.slice');
    assert.equal(v1.unified, '/');
    assert.equal(
      parseProcCgroup(PROC_CGROUP_V2).unified,
      `/kubepods.slice/kubepods-pod1.slice/crisp-${ID}.scope`,
    );
  });

  it('parseNetDev reads bytes and errors per interface, also without a space after the colon', () => {
    const ifaces = parseNetDev(NET_DEV);
    assert.deepEqual(ifaces, [
      { name: 'lo', rxBytes: 840n, rxErrors: 0n, txBytes: 840n, txErrors: 0n },
      { name: 'eth0', rxBytes: 12345678901n, rxErrors: 2n, txBytes: 3468258n, txErrors: 5n },
    ]);
  });

  it('defaultInterface: eth0, else the first that is not lo, else lo', () => {
    const [lo, eth0] = parseNetDev(NET_DEV);
    assert.ok(lo && eth0);
    assert.equal(defaultInterface([lo, eth0])?.name, 'eth0');
    assert.equal(defaultInterface([lo, { ...eth0, name: 'net1' }])?.name, 'net1');
    assert.equal(defaultInterface([lo])?.name, 'lo');
    assert.equal(defaultInterface([]), undefined);
  });

  it('memoryFromV1: working set = usage − total_inactive_file; hierarchical totals; v1 "unlimited"', () => {
    const m = memoryFromV1(1_000_000n, parseKeyedCounters(V1_MEMORY_STAT), 9223372036854771712n);
    assert.deepEqual(m, {
      usage: 1_000_000n,
      workingSet: 1_000_000n - 4096n,
      rss: 2097152n,
      limit: undefined,
      pageFaults: 1500n,
      majorPageFaults: 4n,
    });
    assert.equal(memoryFromV1(100n, new Map([['total_inactive_file', 4096n]]), 1n << 20n).workingSet, 0n);
    assert.equal(memoryFromV1(100n, new Map(), 1n << 20n).limit, 1n << 20n);
  });

  it('memoryFromV2: working set = current − inactive_file, rss = anon, page faults', () => {
    const m = memoryFromV2(4_000_000n, parseKeyedCounters(V2_MEMORY_STAT), 8_000_000n);
    assert.deepEqual(m, {
      usage: 4_000_000n,
      workingSet: 4_000_000n - 524288n,
      rss: 3145728n,
      limit: 8_000_000n,
      pageFaults: 4242n,
      majorPageFaults: 7n,
    });
  });

  it('nanoCores: usage delta over time; unknown for a reset counter or no time', () => {
    const s = 1_000_000_000n;
    assert.equal(nanoCores({ monoNs: 0n, usageNs: 0n }, { monoNs: s, usageNs: s / 2n }), 500_000_000n);
    assert.equal(nanoCores({ monoNs: 0n, usageNs: 0n }, { monoNs: 2n * s, usageNs: 4n * s }), 2n * s);
    assert.equal(nanoCores({ monoNs: 0n, usageNs: 10n }, { monoNs: s, usageNs: 5n }), undefined);
    assert.equal(nanoCores({ monoNs: s, usageNs: 0n }, { monoNs: s, usageNs: 5n }), undefined);
  });

  it('locateCgroup: v1 per controller, v2 one dir; refuses a path that is not the container’s', () => {
    assert.deepEqual(locateCgroup(1, parseProcCgroup(PROC_CGROUP_V1), '/sys/fs/cgroup', ID), {
      version: 1,
      cpuacct: `/sys/fs/cgroup/cpuacct/crisp/${ID}`,
      memory: `/sys/fs/cgroup/memory/crisp/${ID}`,
      pids: `/sys/fs/cgroup/pids/crisp/${ID}`,
    });
    const v2 = locateCgroup(2, parseProcCgroup(PROC_CGROUP_V2), '/sys/fs/cgroup', ID);
    assert.deepEqual(v2, {
      version: 2,
      dir: `/sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice/crisp-${ID}.scope`,
    });
    assert.ok(v2);
    assert.deepEqual(parentCgroup(v2), {
      version: 2,
      dir: '/sys/fs/cgroup/kubepods.slice/kubepods-pod1.slice',
    });
    // A reused pid: some other process's cgroup.
    assert.equal(locateCgroup(1, parseProcCgroup('4:memory:/user.slice\n'), '/sys/fs/cgroup', ID), undefined);
    assert.equal(locateCgroup(2, parseProcCgroup('0::/init.scope\n'), '/sys/fs/cgroup', ID), undefined);
  });

  it('sumCounters adds what is known and drops limits', () => {
    const a = {
      cpuUsageNs: 10n,
      memory: { usage: 5n, workingSet: 4n, rss: 3n, limit: 100n, pageFaults: 2n, majorPageFaults: 1n },
      swapUsage: undefined,
      swapLimit: 9n,
      pids: 2n,
    };
    const b = { cpuUsageNs: 1n, memory: undefined, swapUsage: undefined, swapLimit: undefined, pids: 1n };
    assert.deepEqual(sumCounters([a, b, a]), {
      cpuUsageNs: 21n,
      memory: { usage: 10n, workingSet: 8n, rss: 6n, limit: undefined, pageFaults: 4n, majorPageFaults: 2n },
      swapUsage: undefined,
      swapLimit: undefined,
      pids: 5n,
    });
  });
});

// --- reading a fake /sys/fs/cgroup and /proc ---------------------------------------------------

async function put(path: string, text: string): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, text);
}

class FakeClock implements StatsClock {
  mono = 0n;
  wallNs(): bigint {
    return 1_700_000_000_000_000_000n + this.mono;
  }
  monoNs(): bigint {
    return this.mono;
  }
}

function container(id: string, sandboxId: string, pid: number | undefined, kind: 'app' | 'infra' = 'app') {
  const config = { ...containerConfig(id, sandboxId), kind, v: 1 as const };
  const state = {
    v: 1 as const,
    state: pid === undefined ? ('exited' as const) : ('running' as const),
    updatedAt: '1',
    ...(pid === undefined ? {} : { pid }),
  };
  return { config, state } as StoredContainer;
}

describe('StatsReader', () => {
  let base: string;
  let upperRoot: string;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'crisp-stats-test-'));
    upperRoot = join(base, 'containers');
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  const upperDir = (id: string): string => join(upperRoot, id, 'upper');

  async function v1Host(name: string) {
    const cg = join(base, name, 'cgroup');
    const proc = join(base, name, 'proc');
    const dir = (ctrl: string, path: string) => join(cg, ctrl, path);
    const infraPath = `/kubepods/pod1/crisp-${POD}`;
    const appPath = `/kubepods/pod1/crisp-${ID}`;
    await put(
      join(proc, '100', 'cgroup'),
      `3:pids:${appPath}\n2:cpu,cpuacct:${appPath}\n1:memory:${appPath}\n0::/\n`,
    );
    await put(
      join(proc, '200', 'cgroup'),
      `3:pids:${infraPath}\n2:cpu,cpuacct:${infraPath}\n1:memory:${infraPath}\n`,
    );
    await put(join(proc, '200', 'net', 'dev'), NET_DEV);
    for (const [path, cpu, mem, pids] of [
      [appPath, '2000000000', '1000000', '3'],
      [infraPath, '1000', '100000', '1'],
      ['/kubepods/pod1', '2000001000', '1100000', '4'],
    ] as const) {
      await put(join(dir('cpuacct', path), 'cpuacct.usage'), `${cpu}\n`);
      await put(join(dir('memory', path), 'memory.usage_in_bytes'), `${mem}\n`);
      await put(join(dir('memory', path), 'memory.stat'), V1_MEMORY_STAT);
      await put(join(dir('memory', path), 'memory.limit_in_bytes'), '9223372036854771712\n');
      await put(join(dir('pids', path), 'pids.current'), `${pids}\n`);
    }
    return { cg, proc, appCpu: join(dir('cpuacct', appPath), 'cpuacct.usage') };
  }

  it('v1: cpu, memory, pids from the container cgroup; the rate from the previous sample', async () => {
    const host = await v1Host('v1');
    const clock = new FakeClock();
    const reader = new StatsReader({ upperDir, cgroupRoot: host.cg, procRoot: host.proc, clock });
    assert.equal(await reader.cgroupVersion(), 1);
    const c = container(ID, POD, 100);
    const first = await reader.readContainerStats(c);
    assert.equal(first.cpu?.usageCoreNs, 2_000_000_000n);
    assert.equal(first.cpu.usageNanoCores, undefined, 'no rate from one sample');
    assert.equal(first.memory?.usageBytes, 1_000_000n);
    assert.equal(first.memory.workingSetBytes, 1_000_000n - 4096n);
    assert.equal(first.memory.rssBytes, 2097152n);
    assert.equal(first.memory.availableBytes, undefined, 'no limit, nothing available to report');
    assert.equal(first.memory.pageFaults, 1500n);
    assert.equal(first.process?.count, 3n);
    assert.equal(first.writableLayer, undefined, 'no upper dir yet');

    // 2 s later, 1 s more CPU: half a core.
    clock.mono += 2_000_000_000n;
    await writeFile(host.appCpu, '3000000000\n');
    const second = await reader.readContainerStats(c);
    assert.equal(second.cpu?.usageNanoCores, 500_000_000n);

    // 10 ms later (another client polling): the stored rate, and the base stays.
    clock.mono += 10_000_000n;
    await writeFile(host.appCpu, '3009000000\n');
    assert.equal((await reader.readContainerStats(c)).cpu?.usageNanoCores, 500_000_000n);
    clock.mono += 990_000_000n;
    await writeFile(host.appCpu, '4000000000\n');
    assert.equal((await reader.readContainerStats(c)).cpu?.usageNanoCores, 1_000_000_000n);
  });

  it('v1: a pod with a cgroup parent is read from it; network from the infra pid', async () => {
    const host = await v1Host('v1pod');
    const reader = new StatsReader({
      upperDir,
      cgroupRoot: host.cg,
      procRoot: host.proc,
      clock: new FakeClock(),
    });
    const pod = await reader.readPodStats({
      sandboxId: POD,
      cgroupParent: '/kubepods/pod1',
      hostNetwork: false,
      infra: container(testId('infra'), POD, 200, 'infra'),
      containers: [container(ID, POD, 100)],
    });
    assert.equal(pod.cpu?.usageCoreNs, 2_000_001_000n);
    assert.equal(pod.memory?.usageBytes, 1_100_000n);
    assert.equal(pod.process?.count, 4n);
    assert.equal(pod.network?.defaultInterface.name, 'eth0');
    assert.deepEqual(
      pod.network.interfaces.map((i) => i.name),
      ['lo', 'eth0'],
    );
    assert.equal(pod.containers.length, 1);
    assert.equal(pod.containers[0]?.stats.cpu?.usageCoreNs, 2_000_000_000n);

    // Without a parent: the sum of the infra and application containers.
    const summed = await reader.readPodStats({
      sandboxId: POD,
      cgroupParent: '',
      hostNetwork: true,
      infra: container(testId('infra'), POD, 200, 'infra'),
      containers: [container(ID, POD, 100)],
    });
    assert.equal(summed.cpu?.usageCoreNs, 2_000_001_000n);
    assert.equal(summed.memory?.usageBytes, 1_100_000n);
    assert.equal(summed.process?.count, 4n);
    assert.equal(summed.network, undefined, 'a host-network pod has no counters of its own');
  });

  it('a pid that now belongs to another cgroup, or an exited container, gives no cgroup numbers', async () => {
    const host = await v1Host('v1reuse');
    await put(join(host.proc, '300', 'cgroup'), '1:memory:/user.slice/session-1.scope\n');
    const reader = new StatsReader({
      upperDir,
      cgroupRoot: host.cg,
      procRoot: host.proc,
      clock: new FakeClock(),
    });
    for (const c of [container(ID, POD, 300), container(ID, POD, 999), container(ID, POD, undefined)]) {
      const s = await reader.readContainerStats(c);
      assert.equal(s.cpu, undefined);
      assert.equal(s.memory, undefined);
      assert.equal(s.process, undefined);
    }
  });

  it('v2: cpu.stat usage_usec, memory.current and memory.stat, memory.max, pids.current', async () => {
    const cg = join(base, 'v2', 'cgroup');
    const proc = join(base, 'v2', 'proc');
    await put(join(cg, 'cgroup.controllers'), 'cpu memory pids\n');
    const dir = join(cg, `kubepods.slice/kubepods-pod1.slice/crisp-${ID}.scope`);
    await put(join(proc, '100', 'cgroup'), PROC_CGROUP_V2);
    await put(join(dir, 'cpu.stat'), V2_CPU_STAT);
    await put(join(dir, 'memory.current'), '4000000\n');
    await put(join(dir, 'memory.stat'), V2_MEMORY_STAT);
    await put(join(dir, 'memory.max'), '8000000\n');
    await put(join(dir, 'memory.swap.current'), '0\n');
    await put(join(dir, 'memory.swap.max'), 'max\n');
    await put(join(dir, 'pids.current'), '2\n');
    const reader = new StatsReader({ upperDir, cgroupRoot: cg, procRoot: proc, clock: new FakeClock() });
    assert.equal(await reader.cgroupVersion(), 2);
    const s = await reader.readContainerStats(container(ID, POD, 100));
    assert.equal(s.cpu?.usageCoreNs, 1_234_567_000n);
    assert.equal(s.memory?.workingSetBytes, 4_000_000n - 524288n);
    assert.equal(s.memory.rssBytes, 3145728n);
    assert.equal(s.memory.availableBytes, 8_000_000n - (4_000_000n - 524288n));
    assert.equal(s.memory.majorPageFaults, 7n);
    assert.equal(s.swap?.usageBytes, 0n);
    assert.equal(s.swap.availableBytes, undefined);
    assert.equal(s.process?.count, 2n);

    // A controller that is not enabled leaves its numbers out, nothing fails.
    const counters = await readCgroupCounters({ version: 2, dir: join(cg, 'missing') });
    assert.deepEqual(counters, {
      cpuUsageNs: undefined,
      memory: undefined,
      swapUsage: undefined,
      swapLimit: undefined,
      pids: undefined,
    });
  });

  it('the writable layer: blocks and inodes of the upper dir, hard links once, cached', async () => {
    const id = testId('fs');
    const upper = upperDir(id);
    await mkdir(join(upper, 'etc'), { recursive: true });
    await writeFile(join(upper, 'etc', 'a'), Buffer.alloc(64 * 1024, 1));
    await link(join(upper, 'etc', 'a'), join(upper, 'etc', 'a-link'));
    const reader = new StatsReader({ upperDir, fsCacheMs: 60_000, clock: new FakeClock() });
    const c = container(id, POD, undefined);
    const first = (await reader.readContainerStats(c)).writableLayer;
    assert.ok(first);
    assert.equal(first.mountpoint, upperRoot);
    assert.equal(first.inodesUsed, 3n, 'upper, etc, a (its link counted once)');
    assert.ok(first.usedBytes >= 64n * 1024n, `${first.usedBytes} bytes`);

    await writeFile(join(upper, 'b'), Buffer.alloc(1024 * 1024, 1));
    const cached = (await reader.readContainerStats(c)).writableLayer;
    assert.equal(cached?.usedBytes, first.usedBytes, 'served from the cache');

    const fresh = new StatsReader({ upperDir, fsCacheMs: 0, clock: new FakeClock() });
    const again = (await fresh.readContainerStats(c)).writableLayer;
    assert.equal(again?.inodesUsed, 4n);
    assert.ok(again.usedBytes >= first.usedBytes + 1024n * 1024n);
  });

  it('diskUsage stops at its bounds and says so', async () => {
    const top = join(base, 'many');
    await mkdir(top, { recursive: true });
    for (let i = 0; i < 300; i++) await writeFile(join(top, `f${i}`), 'x');
    const full = await diskUsage(top, { maxEntries: 1000, deadlineMs: 10_000 });
    assert.equal(full?.complete, true);
    assert.equal(full.inodes, 301n);
    const partial = await diskUsage(top, { maxEntries: 100, deadlineMs: 10_000 });
    assert.equal(partial?.complete, false);
    assert.ok(partial.inodes < 301n);
    assert.equal(await diskUsage(join(base, 'nope'), { maxEntries: 10, deadlineMs: 10 }), undefined);
  });

  it('readContainersStats keeps the order given', async () => {
    const host = await v1Host('v1order');
    const reader = new StatsReader({
      upperDir,
      cgroupRoot: host.cg,
      procRoot: host.proc,
      clock: new FakeClock(),
    });
    const cs = [container(ID, POD, 100), container(testId('x'), POD, undefined), container(ID, POD, 100)];
    const out = await reader.readContainersStats(cs);
    assert.deepEqual(
      out.map((s) => s.cpu?.usageCoreNs),
      [2_000_000_000n, undefined, 2_000_000_000n],
    );
  });
});
