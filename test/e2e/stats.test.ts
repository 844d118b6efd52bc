/**
 * Container and pod statistics against real runc containers: CPU time and rate of a busy
 * container, memory, the writable layer growing as the container writes, the pod's network
 * namespace counters and process count, the filters of the list RPCs and their Stream* forms.
 * Numbers are checked against the kernel's own files (cgroup, /proc/<pid>/net/dev), read by the
 * test before and after each call.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import type { ContainerStats__Output } from '../../src/generated/runtime/v1/ContainerStats.js';
import type { PodSandboxStats__Output } from '../../src/generated/runtime/v1/PodSandboxStats.js';
import type { UInt64Value__Output } from '../../src/generated/runtime/v1/UInt64Value.js';
import {
  createAndStart,
  containerPid as pidOf,
  infraPid as infraPidOf,
  rejection,
  type CriClients,
  collect,
} from './harness/cri-client.js';
import { netDev, sleep, until } from './harness/host.js';
import { cgroupDir, kernelCpuNs, removeCgroupDirs } from './harness/cgroups.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

const MiB = 1024n * 1024n;

/** A UInt64Value that must be set. */
function n(v: UInt64Value__Output | null | undefined, what: string): bigint {
  assert.ok(v, `${what} is set`);
  return BigInt(v.value);
}

async function kernelPids(dir: string): Promise<bigint> {
  return BigInt((await readFile(join(dir, 'pids.current'), 'utf8')).trim());
}

describe('stats: containers and pods from their cgroups, layers and network namespaces', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let image: string;
  let logDir: string;
  /** Cgroup parent of the pod that has one; its directories are removed at the end. */
  const parent = `/crisp-e2e-stats-${process.pid}`;

  interface Pod {
    id: string;
    config: ReturnType<typeof podConfig>;
  }
  const podConfig = (name: string, cgroupParent = '') => ({
    metadata: { name, namespace: 'e2e-stats', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: join(logDir, name),
    labels: { app: name, suite: 'stats' },
    annotations: {},
    ...(cgroupParent === '' ? {} : { linux: { cgroup_parent: cgroupParent } }),
  });

  let pod: Pod;
  let parentPod: Pod;
  let busy: string;
  let idle: string;
  let done: string;

  async function runPod(name: string, cgroupParent = ''): Promise<Pod> {
    const config = podConfig(name, cgroupParent);
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    return { id: pod_sandbox_id, config };
  }

  async function runContainer(p: Pod, name: string, command: string[], extra: Record<string, unknown> = {}) {
    return createAndStart(cri, p, {
      metadata: { name, attempt: 0 },
      image: { image },
      command,
      log_path: `${name}.log`,
      labels: { ctr: name, role: name === 'busy' ? 'worker' : 'other' },
      ...extra,
    });
  }

  const containerPid = (id: string): Promise<number> => pidOf(cri, id);
  const infraPid = (podId: string): Promise<number> => infraPidOf(cri, podId);
  const stats = async (id: string): Promise<ContainerStats__Output> => {
    const res = await cri.runtime.ContainerStats({ container_id: id });
    assert.ok(res.stats, 'ContainerStats answers with stats');
    return res.stats;
  };
  const listIds = async (filter: Record<string, unknown> | undefined): Promise<string[]> =>
    (await cri.runtime.ListContainerStats(filter ? { filter } : {})).stats
      .map((s) => s.attributes?.id ?? '')
      .sort();

  before(async () => {
    setup = await startWithBusybox();
    ({ cri, image } = setup);
    logDir = join(setup.dirs.base, 'logs');
    pod = await runPod('stats');
    busy = await runContainer(pod, 'busy', ['sh', '-c', 'while true; do :; done']);
    idle = await runContainer(pod, 'idle', ['sleep', '3600'], {
      linux: { resources: { memory_limit_in_bytes: String(64n * MiB) } },
    });
    done = await runContainer(pod, 'done', ['true']);
    parentPod = await runPod('parented', `${parent}/pod-parented`);
    await runContainer(parentPod, 'sleeper', ['sleep', '3600']);
    await until('the "done" container to exit', async () => {
      const s = (await cri.runtime.ContainerStatus({ container_id: done })).status;
      return s?.state === 'CONTAINER_EXITED' ? true : undefined;
    });
  });

  after(async () => {
    await setup.teardown();
    // runc removes the containers' cgroups; the parent directories are the test's own.
    await removeCgroupDirs([join(parent, 'pod-parented'), parent]);
  });

  it('ContainerStats: a busy container’s CPU time grows, with usage_nano_cores near one core', async () => {
    const dir = await cgroupDir(await containerPid(busy), 'cpuacct');
    const k0 = await kernelCpuNs(dir);
    const first = await stats(busy);
    const k1 = await kernelCpuNs(dir);
    assert.equal(first.attributes?.id, busy);
    assert.deepEqual(first.attributes.metadata, { name: 'busy', attempt: 0 });
    assert.deepEqual(first.attributes.labels, { ctr: 'busy', role: 'worker' });
    const u0 = n(first.cpu?.usage_core_nano_seconds, 'usage_core_nano_seconds');
    assert.ok(k0 <= u0 && u0 <= k1, `reported ${u0} ns lies between the kernel's ${k0} and ${k1}`);

    await sleep(1000);
    const second = await stats(busy);
    const u1 = n(second.cpu?.usage_core_nano_seconds, 'usage_core_nano_seconds');
    assert.ok(u1 > u0, `CPU time grows: ${u0} → ${u1}`);
    const rate = n(second.cpu?.usage_nano_cores, 'usage_nano_cores');
    assert.ok(rate > 100_000_000n, `a busy loop uses a good part of a core: ${rate} nano cores`);
    assert.ok(rate <= 1_100_000_000n, `one shell loop uses at most one core: ${rate}`);
    // The rate agrees with the two samples (their timestamps are the wall clock, ms precision).
    const dt = BigInt(second.cpu?.timestamp ?? '0') - BigInt(first.cpu?.timestamp ?? '0');
    assert.ok(dt >= 900_000_000n, `samples a second apart (${dt} ns)`);
    const fromSamples = ((u1 - u0) * 1_000_000_000n) / dt;
    const diff = fromSamples > rate ? fromSamples - rate : rate - fromSamples;
    assert.ok(diff * 10n < fromSamples, `rate ${rate} ≈ ${fromSamples} from the samples`);

    const mem = second.memory;
    const ws = n(mem?.working_set_bytes, 'working_set_bytes');
    assert.ok(ws > 0n, 'memory working set > 0');
    assert.ok(n(mem?.usage_bytes, 'usage_bytes') >= ws, 'usage ≥ working set');
    assert.ok(n(mem?.rss_bytes, 'rss_bytes') > 0n, 'rss > 0');
    assert.ok(n(mem?.page_faults, 'page_faults') > 0n, 'page faults > 0');
    n(mem?.major_page_faults, 'major_page_faults');
    assert.equal(mem?.available_bytes, null, 'no memory limit: nothing to report as available');
  });

  it('ContainerStats: an idle container uses almost no CPU; its memory limit gives available_bytes', async () => {
    await stats(idle);
    await sleep(600);
    const s = await stats(idle);
    const rate = n(s.cpu?.usage_nano_cores, 'usage_nano_cores');
    assert.ok(rate < 50_000_000n, `sleep uses almost nothing: ${rate} nano cores`);
    const ws = n(s.memory?.working_set_bytes, 'working_set_bytes');
    const available = n(s.memory?.available_bytes, 'available_bytes');
    assert.equal(available, 64n * MiB - ws, 'available = limit − working set');
  });

  it('ContainerStats: the writable layer grows by what the container writes', async () => {
    const layer = (await stats(idle)).writable_layer;
    assert.equal(layer?.fs_id?.mountpoint, join(setup.dirs.root, 'containers'));
    const bytes0 = n(layer.used_bytes, 'used_bytes');
    const inodes0 = n(layer.inodes_used, 'inodes_used');
    const res = await cri.runtime.ExecSync(
      { container_id: idle, cmd: ['dd', 'if=/dev/zero', 'of=/big', 'bs=1M', 'count=5'], timeout: 30 },
      60_000,
    );
    assert.equal(res.exit_code, 0, res.stderr.toString());
    // The layer's size is cached for a few seconds: it shows up within that time.
    const grown = await until('the writable layer to show the 5 MiB file', async () => {
      const l = (await stats(idle)).writable_layer;
      return l && n(l.used_bytes, 'used_bytes') >= bytes0 + 5n * MiB ? l : undefined;
    });
    assert.ok(n(grown.inodes_used, 'inodes_used') > inodes0, 'one more inode');
  });

  it('ContainerStats: NOT_FOUND for an unknown id, FAILED_PRECONDITION for one that does not run', async () => {
    const unknown = await rejection(cri.runtime.ContainerStats({ container_id: 'f'.repeat(64) }));
    assert.equal(unknown.code, GrpcCode.NOT_FOUND);
    const empty = await rejection(cri.runtime.ContainerStats({ container_id: '' }));
    assert.equal(empty.code, GrpcCode.INVALID_ARGUMENT);
    assert.match(empty.details, /container_id/);
    const exited = await rejection(cri.runtime.ContainerStats({ container_id: done }));
    assert.equal(exited.code, GrpcCode.FAILED_PRECONDITION);
    assert.match(exited.details, /only available while it runs/);
  });

  it('ListContainerStats: running application containers, by id prefix, pod id and labels', async () => {
    const sleeper = (await cri.runtime.ListContainers({ filter: { pod_sandbox_id: parentPod.id } }))
      .containers[0]?.id;
    assert.ok(sleeper);
    assert.deepEqual(await listIds(undefined), [busy, idle, sleeper].sort(), 'the exited one is left out');
    assert.deepEqual(await listIds({ id: busy.slice(0, 12) }), [busy]);
    assert.deepEqual(await listIds({ id: done }), [], 'an exited container has no stats');
    assert.deepEqual(await listIds({ pod_sandbox_id: pod.id }), [busy, idle].sort());
    assert.deepEqual(await listIds({ pod_sandbox_id: parentPod.id.slice(0, 10) }), [sleeper]);
    assert.deepEqual(await listIds({ label_selector: { role: 'worker' } }), [busy]);
    assert.deepEqual(await listIds({ pod_sandbox_id: parentPod.id, label_selector: { role: 'worker' } }), []);
    assert.deepEqual(await listIds({ id: 'f'.repeat(64) }), []);
    const one = (await cri.runtime.ListContainerStats({ filter: { id: busy } })).stats[0];
    n(one?.cpu?.usage_core_nano_seconds, 'listed usage_core_nano_seconds');
    n(one?.memory?.working_set_bytes, 'listed working_set_bytes');
    n(one?.writable_layer?.used_bytes, 'listed writable layer');
  });

  it('StreamContainerStats: the same stats in messages', async () => {
    const all = await collect(cri.raw.runtime.StreamContainerStats({}));
    assert.ok(all.length >= 1);
    const ids = all.flatMap((m) => m.container_stats.map((s) => s.attributes?.id ?? '')).sort();
    assert.equal(ids.length, 3);
    assert.ok(ids.includes(busy) && ids.includes(idle));
    const filtered = await collect(
      cri.raw.runtime.StreamContainerStats({ filter: { label_selector: { role: 'worker' } } }),
    );
    assert.deepEqual(
      filtered.flatMap((m) => m.container_stats.map((s) => s.attributes?.id)),
      [busy],
    );
    const none = await collect(cri.raw.runtime.StreamContainerStats({ filter: { id: done } }));
    assert.deepEqual(
      none.map((m) => m.container_stats.length),
      [0],
      'one empty message when nothing matches',
    );
  });

  it('PodSandboxStats: its running containers, the sums, processes and the pod namespace’s interfaces', async () => {
    const ipid = await infraPid(pod.id);
    // Loopback traffic in the pod's namespace: a refused connection is a SYN and a RST on lo.
    const net0 = await netDev(ipid);
    await cri.runtime.ExecSync(
      {
        container_id: idle,
        cmd: ['sh', '-c', 'nc -w 1 127.0.0.1 9 </dev/null || true'],
        timeout: 10,
      },
      30_000,
    );
    const res = await cri.runtime.PodSandboxStats({ pod_sandbox_id: pod.id });
    const net1 = await netDev(ipid);
    const s: PodSandboxStats__Output | null = res.stats;
    assert.ok(s?.linux, 'linux stats');
    assert.equal(s.attributes?.id, pod.id);
    assert.deepEqual(s.attributes.metadata, {
      name: 'stats',
      namespace: 'e2e-stats',
      uid: 'uid-stats',
      attempt: 0,
    });
    assert.deepEqual(s.attributes.labels, { app: 'stats', suite: 'stats' });

    const linux = s.linux;
    assert.deepEqual(
      linux.containers.map((c) => c.attributes?.metadata?.name).sort(),
      ['busy', 'idle'],
      'the running application containers (not the exited one, not the infra container)',
    );

    // No cgroup parent: the pod's numbers are its containers' sums (the infra container's too).
    const byName = new Map(linux.containers.map((c) => [c.attributes?.metadata?.name, c]));
    const podCpu = n(linux.cpu?.usage_core_nano_seconds, 'pod usage_core_nano_seconds');
    const ctrCpu =
      n(byName.get('busy')?.cpu?.usage_core_nano_seconds, 'busy cpu') +
      n(byName.get('idle')?.cpu?.usage_core_nano_seconds, 'idle cpu');
    assert.ok(podCpu >= ctrCpu, `pod CPU ${podCpu} ≥ its containers' ${ctrCpu}`);
    const podWs = n(linux.memory?.working_set_bytes, 'pod working set');
    assert.ok(podWs > 0n);
    // pause, the busy shell, sleep.
    assert.equal(n(linux.process?.process_count, 'process_count'), 3n);

    // Until CNI lands the pod has only loopback: it is every interface and the default one.
    const network = linux.network;
    assert.ok(network, 'network stats for a pod with its own namespace');
    assert.deepEqual(
      network.interfaces.map((i) => i.name),
      [...net1.keys()],
      'the interfaces of the pod namespace',
    );
    const lo = network.interfaces.find((i) => i.name === 'lo');
    assert.ok(lo);
    assert.equal(network.default_interface?.name, net1.has('eth0') ? 'eth0' : 'lo');
    const rx = n(lo.rx_bytes, 'lo rx_bytes');
    const lo0 = net0.get('lo');
    const lo1 = net1.get('lo');
    assert.ok(lo0 && lo1);
    assert.ok(lo1.rx > lo0.rx, 'the connection attempt went over lo');
    assert.ok(lo0.rx < rx && rx <= lo1.rx, `lo rx ${rx} is the namespace's (${lo0.rx} → ${lo1.rx})`);
    n(lo.tx_bytes, 'lo tx_bytes');
    n(lo.rx_errors, 'lo rx_errors');
    n(lo.tx_errors, 'lo tx_errors');
  });

  it('PodSandboxStats: a pod with a cgroup parent is read from its cgroup', async () => {
    const ipid = await infraPid(parentPod.id);
    const podCpuDir = join(await cgroupDir(ipid, 'cpuacct'), '..');
    assert.ok(podCpuDir.endsWith(`${parent}/pod-parented`), podCpuDir);
    const k0 = await kernelCpuNs(podCpuDir);
    const res = await cri.runtime.PodSandboxStats({ pod_sandbox_id: parentPod.id });
    const k1 = await kernelCpuNs(podCpuDir);
    const linux = res.stats?.linux;
    assert.ok(linux);
    const cpu = n(linux.cpu?.usage_core_nano_seconds, 'pod usage_core_nano_seconds');
    assert.ok(k0 <= cpu && cpu <= k1, `pod CPU ${cpu} is the pod cgroup's (${k0} … ${k1})`);
    const pidsDir = join(await cgroupDir(ipid, 'pids'), '..');
    assert.equal(
      n(linux.process?.process_count, 'process_count'),
      await kernelPids(pidsDir),
      'pause + sleep',
    );
    assert.equal(n(linux.process?.process_count, 'process_count'), 2n);
    assert.deepEqual(
      linux.containers.map((c) => c.attributes?.metadata?.name),
      ['sleeper'],
    );
  });

  it('ListPodSandboxStats and StreamPodSandboxStats: ready pods, by id prefix and labels', async () => {
    const ids = async (filter?: Record<string, unknown>) =>
      (await cri.runtime.ListPodSandboxStats(filter ? { filter } : {})).stats
        .map((s) => s.attributes?.id)
        .sort();
    assert.deepEqual(await ids(), [pod.id, parentPod.id].sort());
    assert.deepEqual(await ids({ id: pod.id.slice(0, 8) }), [pod.id]);
    assert.deepEqual(await ids({ label_selector: { app: 'parented' } }), [parentPod.id]);
    assert.deepEqual(await ids({ label_selector: { suite: 'stats' } }), [pod.id, parentPod.id].sort());
    assert.deepEqual(await ids({ label_selector: { app: 'nope' } }), []);

    const streamed = await collect(cri.raw.runtime.StreamPodSandboxStats({ filter: { id: parentPod.id } }));
    assert.deepEqual(
      streamed.flatMap((m) => m.pod_sandbox_stats.map((s) => s.attributes?.id)),
      [parentPod.id],
    );

    // A stopped pod has no stats: left out of the list, FAILED_PRECONDITION on its own.
    const gone = await runPod('stopped');
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: gone.id }, 60_000);
    assert.deepEqual(await ids({ id: gone.id }), []);
    const err = await rejection(cri.runtime.PodSandboxStats({ pod_sandbox_id: gone.id }));
    assert.equal(err.code, GrpcCode.FAILED_PRECONDITION);
    const unknown = await rejection(cri.runtime.PodSandboxStats({ pod_sandbox_id: 'e'.repeat(64) }));
    assert.equal(unknown.code, GrpcCode.NOT_FOUND);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: gone.id }, 60_000);
  });
});
