/**
 * Container resources seen from inside the container's cgroup: limits at create, crisp's
 * pids_limit, swap, huge pages and unified settings as far as the node's cgroups allow, and
 * UpdateContainerResources on a live container (also in ContainerStatus).
 */
import assert from 'node:assert/strict';
import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { rejection, type CriClients } from './harness/cri-client.js';
import { until } from './harness/host.js';
import { cgroupV2, removeCgroupDirs } from './harness/cgroups.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';
import type { LinuxContainerResources } from '../../src/generated/runtime/v1/LinuxContainerResources.js';

/** crisp.toml pids_limit for this file's daemon. */
const PIDS_LIMIT = 40;
const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

describe('container resources', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let v2 = false;
  let podCount = 0;

  before(async () => {
    setup = await startWithBusybox(`pids_limit = ${PIDS_LIMIT}\n`);
    cri = setup.cri;
    v2 = await cgroupV2();
  });

  /** The cgroup parent of the resized pod; its directories are the test's own, removed after. */
  const parent = `/crisp-e2e-resources-${process.pid}`;

  async function runPod(cgroupParent = '') {
    const name = `res${++podCount}`;
    const config = {
      metadata: { name, namespace: 'e2e', uid: `uid-${name}`, attempt: 0 },
      hostname: name,
      log_directory: join(setup.dirs.base, 'logs', name),
      ...(cgroupParent === '' ? {} : { linux: { cgroup_parent: cgroupParent } }),
    };
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    return { id: pod_sandbox_id, config };
  }

  const create = (
    pod: Awaited<ReturnType<typeof runPod>>,
    name: string,
    resources: LinuxContainerResources,
  ) =>
    cri.runtime.CreateContainer(
      {
        pod_sandbox_id: pod.id,
        config: {
          metadata: { name },
          image: { image: setup.image },
          command: ['sleep', '1000'],
          linux: { resources },
        },
        sandbox_config: pod.config,
      },
      60_000,
    );

  async function sh(id: string, script: string) {
    const res = await cri.runtime.ExecSync({ container_id: id, cmd: ['sh', '-c', script], timeout: '30' });
    return { code: res.exit_code, out: res.stdout.toString().trim(), err: res.stderr.toString() };
  }

  it('limits processes to crisp.toml pids_limit', async () => {
    const pod = await runPod();
    const { container_id: id } = await create(pod, 'pids', {});
    await cri.runtime.StartContainer({ container_id: id });
    const max = v2 ? '/sys/fs/cgroup/pids.max' : '/sys/fs/cgroup/pids/pids.max';
    assert.equal((await sh(id, `cat ${max}`)).out, String(PIDS_LIMIT));
    // Twice as many background sleeps as allowed: the ones over the limit cannot fork (busybox's
    // shell gives up there, so the loop runs in a shell of its own). The count is read by the
    // outer shell with its builtin `read`: at the limit no new process, not even another exec,
    // can start in the container until the sleeps end.
    const current = v2 ? '/sys/fs/cgroup/pids.current' : '/sys/fs/cgroup/pids/pids.current';
    const loop = `i=0; while [ $i -lt ${PIDS_LIMIT * 2} ]; do sleep 20 & i=$((i+1)); done`;
    const res = await sh(id, `sh -c '${loop}'; read n < ${current}; echo "current=$n"`);
    assert.match(res.err, /can't fork|Resource temporarily unavailable/, res.err);
    const now = Number(/current=(\d+)/.exec(res.out)?.[1] ?? 'NaN');
    assert.ok(now <= PIDS_LIMIT && now >= PIDS_LIMIT / 2, `pids.current ${now} <= ${PIDS_LIMIT}: ${res.out}`);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
  });

  it('caps swap at the memory limit where the node accounts swap', async () => {
    const pod = await runPod();
    const limit = String(64 * 1024 * 1024);
    const { container_id: id } = await create(pod, 'swap', { memory_limit_in_bytes: limit });
    await cri.runtime.StartContainer({ container_id: id });
    if (v2) {
      // memory.swap.max is the swap on top of memory: 0 when swap equals the limit.
      const swap = await sh(id, 'cat /sys/fs/cgroup/memory.swap.max');
      assert.ok(swap.code !== 0 || swap.out === '0', swap.out);
    } else if (await exists('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes')) {
      assert.equal((await sh(id, 'cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes')).out, limit);
    } else {
      assert.equal((await sh(id, 'test -e /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes')).code, 1);
    }
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
  });

  it('takes kubelet’s huge page limits and refuses a page size the node lacks', async () => {
    const pod = await runPod();
    // kubelet sends every size the node has, 0 for those the pod did not ask for: read them here.
    const sizes = (await readdir('/sys/kernel/mm/hugepages').catch(() => [] as string[]))
      .map((d) => /^hugepages-(\d+)kB$/.exec(d)?.[1])
      .filter((kb): kb is string => kb !== undefined)
      .map((kb) =>
        Number(kb) >= 1024 * 1024 ? `${Number(kb) / (1024 * 1024)}GB` : `${Number(kb) / 1024}MB`,
      );
    assert.ok(sizes.includes('2MB'), `this node's huge page sizes: ${sizes.join(', ')}`);
    const { container_id: id } = await create(pod, 'huge', {
      hugepage_limits: sizes.map((page_size) => ({
        page_size,
        limit: page_size === '2MB' ? String(4 * 1024 * 1024) : '0',
      })),
    });
    await cri.runtime.StartContainer({ container_id: id });
    const v1File = '/sys/fs/cgroup/hugetlb/hugetlb.2MB.limit_in_bytes';
    if (v2 || (await exists('/sys/fs/cgroup/hugetlb'))) {
      const file = v2 ? '/sys/fs/cgroup/hugetlb.2MB.max' : v1File;
      assert.equal((await sh(id, `cat ${file}`)).out, String(4 * 1024 * 1024));
    } else {
      // No hugetlb hierarchy runc could use (hybrid node): tolerated, the container runs.
      assert.equal((await sh(id, 'echo running')).out, 'running');
    }
    const bad = await rejection(
      create(pod, 'bad-huge', { hugepage_limits: [{ page_size: '3MB', limit: '0' }] }),
    );
    assert.equal(bad.code, GrpcCode.INVALID_ARGUMENT, bad.details);
    assert.match(bad.details, /hugepage_limits\[0\]\.page_size.*"3MB"/);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
  });

  it('applies unified settings on cgroup v2 and refuses them clearly on v1', async () => {
    const pod = await runPod();
    const unified = { 'memory.high': String(32 * 1024 * 1024) };
    if (v2) {
      const { container_id: id } = await create(pod, 'unified', { unified });
      await cri.runtime.StartContainer({ container_id: id });
      assert.equal((await sh(id, 'cat /sys/fs/cgroup/memory.high')).out, unified['memory.high']);
    } else {
      const err = await rejection(create(pod, 'unified', { unified }));
      assert.equal(err.code, GrpcCode.INVALID_ARGUMENT, err.details);
      assert.match(err.details, /unified.*"memory\.high".*cgroup v1/);
      const listed = await cri.runtime.ListContainers({ filter: { pod_sandbox_id: pod.id } });
      assert.equal(listed.containers.length, 0, 'nothing created');
    }
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
  });

  after(async () => {
    await setup.teardown();
    await removeCgroupDirs([join(parent, 'pod'), parent]);
  });

  it('writes a resized pod’s resources plus overhead to its cgroup', async () => {
    const pod = await runPod(`${parent}/pod`);
    const { container_id: id } = await create(pod, 'c', {});
    await cri.runtime.StartContainer({ container_id: id });
    const file = (controller: string, name: string) =>
      v2
        ? join('/sys/fs/cgroup', parent, 'pod', name)
        : join('/sys/fs/cgroup', controller, parent, 'pod', name);
    const read = async (controller: string, name: string) =>
      (await readFile(file(controller, name), 'utf8')).trim();
    const mib = (n: number) => String(n * 1024 * 1024);

    await cri.runtime.UpdatePodSandboxResources({
      pod_sandbox_id: pod.id,
      resources: {
        cpu_shares: '512',
        cpu_quota: '50000',
        cpu_period: '100000',
        memory_limit_in_bytes: mib(256),
      },
      overhead: { cpu_shares: '10', memory_limit_in_bytes: mib(16) },
    });
    if (v2) {
      assert.equal(await read('', 'memory.max'), mib(272));
      assert.equal(await read('', 'cpu.max'), '50000 100000');
    } else {
      assert.equal(await read('memory', 'memory.limit_in_bytes'), mib(272));
      assert.equal(await read('cpu', 'cpu.shares'), '522');
      assert.equal(await read('cpu', 'cpu.cfs_quota_us'), '50000');
    }
    // The container runs inside the pod's cgroup, so the pod limit bounds it.
    const cgroupLine = (await sh(id, 'cat /proc/self/cgroup')).out;
    assert.match(cgroupLine, new RegExp(`${parent}/pod/`));

    // Bad input changes nothing.
    const bad = await rejection(
      cri.runtime.UpdatePodSandboxResources({ pod_sandbox_id: pod.id, resources: { cpu_shares: '-5' } }),
    );
    assert.equal(bad.code, GrpcCode.INVALID_ARGUMENT, bad.details);
    assert.match(bad.details, /resources\.cpu_shares.*-5/);
    assert.equal(await read(v2 ? '' : 'memory', v2 ? 'memory.max' : 'memory.limit_in_bytes'), mib(272));
    const unknown = await rejection(
      cri.runtime.UpdatePodSandboxResources({
        pod_sandbox_id: 'f'.repeat(64),
        resources: { cpu_shares: '2' },
      }),
    );
    assert.equal(unknown.code, GrpcCode.NOT_FOUND, unknown.details);

    // A pod without a cgroup parent has no cgroup of its own: accepted, nothing to write.
    const plain = await runPod();
    await cri.runtime.UpdatePodSandboxResources({
      pod_sandbox_id: plain.id,
      resources: { cpu_shares: '256' },
    });
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: plain.id }, 60_000);

    await cri.runtime.StopPodSandbox({ pod_sandbox_id: pod.id }, 60_000);
    const stopped = await rejection(
      cri.runtime.UpdatePodSandboxResources({ pod_sandbox_id: pod.id, resources: { cpu_shares: '2' } }),
    );
    assert.equal(stopped.code, GrpcCode.FAILED_PRECONDITION, stopped.details);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
  });

  it('changes a running container’s limits live and reports them', async () => {
    const config = {
      metadata: { name: 'res', namespace: 'e2e', uid: 'uid-res', attempt: 0 },
      hostname: 'res',
      log_directory: join(setup.dirs.base, 'logs', 'res'),
    };
    const { pod_sandbox_id: pod } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    const { container_id: id } = await cri.runtime.CreateContainer(
      {
        pod_sandbox_id: pod,
        config: {
          metadata: { name: 'c' },
          image: { image: setup.image },
          command: ['sleep', '1000'],
          linux: { resources: { memory_limit_in_bytes: String(64 * 1024 * 1024), cpu_shares: '512' } },
        },
        sandbox_config: config,
      },
      60_000,
    );
    await cri.runtime.StartContainer({ container_id: id });
    const read = async (file: string): Promise<string> => {
      const res = await cri.runtime.ExecSync({ container_id: id, cmd: ['cat', file], timeout: '10' });
      assert.equal(res.exit_code, 0, res.stderr.toString());
      return res.stdout.toString().trim();
    };
    assert.equal(await read('/sys/fs/cgroup/memory/memory.limit_in_bytes'), String(64 * 1024 * 1024));
    assert.equal(await read('/sys/fs/cgroup/cpu/cpu.shares'), '512');
    const before = (await cri.runtime.ContainerStatus({ container_id: id })).status?.resources?.linux;
    assert.ok(before);
    assert.equal(before.memory_limit_in_bytes, String(64 * 1024 * 1024));

    await cri.runtime.UpdateContainerResources({
      container_id: id,
      linux: { memory_limit_in_bytes: String(128 * 1024 * 1024), cpu_shares: '256' },
    });
    assert.equal(await read('/sys/fs/cgroup/memory/memory.limit_in_bytes'), String(128 * 1024 * 1024));
    assert.equal(await read('/sys/fs/cgroup/cpu/cpu.shares'), '256');
    const after = (await cri.runtime.ContainerStatus({ container_id: id })).status?.resources?.linux;
    assert.ok(after);
    assert.equal(after.memory_limit_in_bytes, String(128 * 1024 * 1024));
    assert.equal(after.cpu_shares, '256');

    const tooSmall = await rejection(
      cri.runtime.UpdateContainerResources({ container_id: id, linux: { memory_limit_in_bytes: '1024' } }),
    );
    assert.equal(tooSmall.code, GrpcCode.INVALID_ARGUMENT, tooSmall.details);
    assert.match(tooSmall.details, /memory_limit_in_bytes/);
    assert.equal(
      await read('/sys/fs/cgroup/memory/memory.limit_in_bytes'),
      String(128 * 1024 * 1024),
      'unchanged',
    );

    await cri.runtime.StopContainer({ container_id: id, timeout: '0' }, 30_000);
    await until('exit', async () => {
      const s = await cri.runtime.ContainerStatus({ container_id: id });
      return s.status?.state === 'CONTAINER_EXITED' ? true : undefined;
    });
    const exited = await rejection(
      cri.runtime.UpdateContainerResources({ container_id: id, linux: { cpu_shares: '100' } }),
    );
    assert.equal(exited.code, GrpcCode.FAILED_PRECONDITION, exited.details);
    const unknown = await rejection(
      cri.runtime.UpdateContainerResources({ container_id: 'f'.repeat(64), linux: { cpu_shares: '100' } }),
    );
    assert.equal(unknown.code, GrpcCode.NOT_FOUND);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod }, 60_000);
  });
});
