/** UpdateContainerResources on a live container, seen in its cgroup and in ContainerStatus. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { rejection, type CriClients } from './harness/cri-client.js';
import { until } from './harness/host.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

describe('container resources', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;

  before(async () => {
    setup = await startWithBusybox();
    cri = setup.cri;
  });

  after(async () => {
    await setup.teardown();
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
