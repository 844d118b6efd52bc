/**
 * Bind mounts as containers see them: read-only, and the three propagation modes — a mount made
 * on the host after the container started shows inside only with HOST_TO_CONTAINER (or
 * BIDIRECTIONAL), and a mount made inside shows on the host only with BIDIRECTIONAL.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { runCommand } from '../../src/util/command.js';
import { rejection, type CriClients } from './harness/cri-client.js';
import { mountsUnder } from './harness/host.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

describe('bind mounts and propagation', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let shared: string;

  before(async () => {
    setup = await startWithBusybox();
    cri = setup.cri;
    // A host directory that is a shared mount point (as kubelet's pod volume dirs are).
    shared = await mkdtemp(join(tmpdir(), 'crisp-e2e-shared-'));
    await runCommand('mount', ['--bind', shared, shared]);
    await runCommand('mount', ['--make-rshared', shared]);
    await writeFile(join(shared, 'file'), 'from the host\n');
  });

  after(async () => {
    await setup.teardown();
    for (const m of (await mountsUnder(shared)).sort((a, b) => b.length - a.length)) {
      await runCommand('umount', ['-l', m]).catch(() => undefined);
    }
    await rm(shared, { recursive: true, force: true });
  });

  const pod = async (name: string, privileged = false) => {
    const config = {
      metadata: { name, namespace: 'e2e', uid: `uid-${name}`, attempt: 0 },
      hostname: name,
      ...(privileged ? { linux: { security_context: { privileged: true } } } : {}),
    };
    const { pod_sandbox_id: id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    return { id, config };
  };
  const container = async (
    p: Awaited<ReturnType<typeof pod>>,
    name: string,
    mount: Record<string, unknown>,
    privileged = false,
  ): Promise<string> => {
    const { container_id } = await cri.runtime.CreateContainer(
      {
        pod_sandbox_id: p.id,
        config: {
          metadata: { name },
          image: { image: setup.image },
          command: ['sleep', '1000'],
          mounts: [{ container_path: '/data', host_path: shared, ...mount }],
          ...(privileged ? { linux: { security_context: { privileged: true } } } : {}),
        },
        sandbox_config: p.config,
      },
      60_000,
    );
    await cri.runtime.StartContainer({ container_id }, 60_000);
    return container_id;
  };
  const sh = async (id: string, script: string) => {
    const res = await cri.runtime.ExecSync({ container_id: id, cmd: ['sh', '-c', script], timeout: '10' });
    return { code: res.exit_code, out: res.stdout.toString(), err: res.stderr.toString() };
  };

  it('binds read-write and read-only', async () => {
    const p = await pod('rw-ro');
    const rw = await container(p, 'rw', {});
    assert.equal((await sh(rw, 'cat /data/file')).out, 'from the host\n');
    assert.equal((await sh(rw, 'echo x > /data/from-rw')).code, 0);
    const ro = await container(p, 'ro', { readonly: true });
    const write = await sh(ro, 'echo x > /data/from-ro');
    assert.notEqual(write.code, 0);
    assert.match(write.err, /Read-only file system/);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
  });

  it('propagates host mounts into HOST_TO_CONTAINER mounts only, and container mounts out of BIDIRECTIONAL ones', async () => {
    const p = await pod('prop', true);
    const priv = await container(p, 'private', { propagation: 'PROPAGATION_PRIVATE' });
    const slave = await container(p, 'slave', { propagation: 'PROPAGATION_HOST_TO_CONTAINER' });
    const both = await container(p, 'both', { propagation: 'PROPAGATION_BIDIRECTIONAL' }, true);

    // A mount made on the host after the containers started.
    await mkdir(join(shared, 'late'), { recursive: true });
    await runCommand('mount', ['-t', 'tmpfs', 'late', join(shared, 'late')]);
    const seesLate = async (id: string) => (await sh(id, 'grep -c " /data/late " /proc/mounts')).out.trim();
    assert.equal(await seesLate(priv), '0', 'PRIVATE does not see it');
    assert.equal(await seesLate(slave), '1', 'HOST_TO_CONTAINER sees it');
    assert.equal(await seesLate(both), '1', 'BIDIRECTIONAL sees it');

    // A mount made inside the bidirectional container appears on the host.
    const made = await sh(both, 'mkdir -p /data/inner && mount -t tmpfs inner /data/inner && echo done');
    assert.equal(made.out, 'done\n', made.err);
    assert.ok(
      (await mountsUnder(shared)).includes(join(shared, 'inner')),
      'the host sees the container’s mount',
    );
    await sh(both, 'umount /data/inner');
    await runCommand('umount', [join(shared, 'late')]);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
  });

  it('refuses BIDIRECTIONAL without privileged and recursive_read_only it cannot honour', async () => {
    const p = await pod('refuse');
    const create = (mount: Record<string, unknown>) =>
      rejection(
        cri.runtime.CreateContainer({
          pod_sandbox_id: p.id,
          config: {
            metadata: { name: 'bad' },
            image: { image: setup.image },
            command: ['sleep', '1000'],
            mounts: [{ container_path: '/data', host_path: shared, ...mount }],
          },
          sandbox_config: p.config,
        }),
      );
    const bidi = await create({ propagation: 'PROPAGATION_BIDIRECTIONAL' });
    assert.equal(bidi.code, GrpcCode.INVALID_ARGUMENT, bidi.details);
    assert.match(bidi.details, /mounts\[0\]\.propagation/);
    const rroAlone = await create({ recursive_read_only: true });
    assert.equal(rroAlone.code, GrpcCode.INVALID_ARGUMENT);
    assert.match(rroAlone.details, /needs readonly/);
    const rro = await create({ readonly: true, recursive_read_only: true });
    assert.equal(rro.code, GrpcCode.INVALID_ARGUMENT);
    assert.match(rro.details, /recursive_read_only/);
    const status = await cri.runtime.Status({});
    assert.ok(
      status.runtime_handlers.every((h) => h.features?.recursive_read_only_mounts === false),
      'Status says so',
    );
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
  });
});
