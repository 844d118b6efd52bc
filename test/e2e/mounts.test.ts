/**
 * Bind mounts as containers see them: read-only, and the three propagation modes — a mount made
 * on the host after the container started shows inside only with HOST_TO_CONTAINER (or
 * BIDIRECTIONAL), and a mount made inside shows on the host only with BIDIRECTIONAL. Image
 * volumes (Mount.image): another image's files, read-only and noexec, whole or a sub path.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { runCommand } from '../../src/util/command.js';
import { execSh, createAndStart, rejection, type CriClients } from './harness/cri-client.js';
import { mountsUnder, until } from './harness/host.js';
import { LAYERED_EXPECT, layeredImage } from './harness/test-images.js';
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
    return createAndStart(cri, p, {
      metadata: { name },
      image: { image: setup.image },
      command: ['sleep', '1000'],
      mounts: [{ container_path: '/data', host_path: shared, ...mount }],
      ...(privileged ? { linux: { security_context: { privileged: true } } } : {}),
    });
  };
  const sh = (id: string, script: string) => execSh(cri, id, script);

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

  it('refuses BIDIRECTIONAL without privileged and recursive_read_only without readonly', async () => {
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
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
  });

  it('makes a recursive_read_only mount read-only below its submounts too, where plain readonly does not', async () => {
    const sub = join(shared, 'rro-sub');
    await mkdir(sub, { recursive: true });
    await runCommand('mount', ['-t', 'tmpfs', 'tmpfs', sub]);
    const p = await pod('rro');
    const plain = await container(p, 'plain-ro', { readonly: true });
    const rro = await container(p, 'rro', { readonly: true, recursive_read_only: true });
    for (const id of [plain, rro]) {
      assert.match(
        (await sh(id, 'touch /data/top')).err,
        /Read-only file system/,
        'the mount itself is read-only',
      );
    }
    assert.equal(
      (await sh(plain, 'touch /data/rro-sub/x')).code,
      0,
      'readonly alone leaves submounts writable',
    );
    assert.match(
      (await sh(rro, 'touch /data/rro-sub/y')).err,
      /Read-only file system/,
      'rro covers the submount',
    );
    // A restart makes it read-only again.
    await cri.runtime.StopContainer({ container_id: rro, timeout: '0' }, 30_000);
    await cri.runtime.StartContainer({ container_id: rro }, 60_000);
    assert.match((await sh(rro, 'touch /data/rro-sub/z')).err, /Read-only file system/);
    const status = await cri.runtime.Status({});
    assert.ok(
      status.runtime_handlers.every((h) => h.features?.recursive_read_only_mounts === true),
      'Status says so',
    );
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
    await runCommand('umount', [sub]);
  });

  it('binds a file at the termination message path, where what the container writes reaches the node', async () => {
    // kubelet makes the file in the pod's directory and mounts it at terminationMessagePath.
    const log = join(shared, 'termination-log');
    await writeFile(log, '');
    const p = await pod('termination');
    const { container_id: id } = await cri.runtime.CreateContainer(
      {
        pod_sandbox_id: p.id,
        config: {
          metadata: { name: 'dies' },
          image: { image: setup.image },
          command: ['sh', '-c', 'echo "out of cheese" > /dev/termination-log; exit 3'],
          mounts: [{ container_path: '/dev/termination-log', host_path: log }],
        },
        sandbox_config: p.config,
      },
      60_000,
    );
    await cri.runtime.StartContainer({ container_id: id }, 60_000);
    await until('the container to exit', async () => {
      const st = (await cri.runtime.ContainerStatus({ container_id: id })).status;
      return st?.state === 'CONTAINER_EXITED' ? st : undefined;
    });
    assert.equal(await readFile(log, 'utf8'), 'out of cheese\n');
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
  });

  it('mounts another image read-only and noexec, whole or a sub path, and keeps it while used', async () => {
    await setup.registry.push('library/layered', '1', await layeredImage());
    const layered = `${setup.registry.host}/library/layered:1`;
    await cri.image.PullImage({ image: { image: layered } }, 60_000);
    const p = await pod('imgvol');
    const create = (mounts: Record<string, unknown>[], name = 'vol') =>
      cri.runtime.CreateContainer(
        {
          pod_sandbox_id: p.id,
          config: {
            metadata: { name },
            image: { image: setup.image },
            command: ['sleep', '1000'],
            mounts,
          },
          sandbox_config: p.config,
        },
        60_000,
      );
    const { container_id: id } = await create([
      { container_path: '/vol', image: { image: layered } },
      { container_path: '/sub', image: { image: layered }, image_sub_path: 'data' },
      // A symlink in the sub path resolves inside the image (/link → /data/keep), and `..`
      // cannot climb out of it.
      { container_path: '/keep', image: { image: layered }, image_sub_path: 'link' },
      { container_path: '/esc', image: { image: layered }, image_sub_path: '../../..' },
    ]);
    await cri.runtime.StartContainer({ container_id: id }, 60_000);
    assert.equal((await sh(id, 'cat /vol/data/keep')).out, LAYERED_EXPECT.files['/data/keep']);
    assert.equal((await sh(id, 'test -e /vol/data/gone')).code, 1, 'whiteouts applied');
    assert.equal((await sh(id, 'cat /sub/keep')).out, 'keep\n');
    assert.equal((await sh(id, 'cat /keep')).out, 'keep\n');
    assert.equal((await sh(id, 'cat /esc/data/keep')).out, 'keep\n', 'the image root, not the host');
    const write = await sh(id, 'echo x > /vol/data/new');
    assert.match(write.err, /Read-only file system/);
    const exec = await sh(id, '/vol/bin/busybox true');
    assert.notEqual(exec.code, 0, 'noexec');
    assert.match(exec.err, /Permission denied/);

    const inUse = await rejection(cri.image.RemoveImage({ image: { image: layered } }));
    assert.equal(inUse.code, GrpcCode.FAILED_PRECONDITION, inUse.details);
    assert.match(inUse.details, /image volume/);

    // Restarted, the container gets its volume again.
    await cri.runtime.StopContainer({ container_id: id, timeout: '0' }, 30_000);
    await cri.runtime.StartContainer({ container_id: id }, 60_000);
    assert.equal((await sh(id, 'cat /vol/data/keep')).out, 'keep\n');

    // Bad input: a sub path the image lacks, an image the node lacks; nothing is created.
    const missingSub = await rejection(
      create([{ container_path: '/x', image: { image: layered }, image_sub_path: 'nope' }], 'bad1'),
    );
    assert.equal(missingSub.code, GrpcCode.INVALID_ARGUMENT, missingSub.details);
    assert.match(missingSub.details, /mounts\[0\]\.image_sub_path.*"nope"/);
    const notPulled = await rejection(
      create([{ container_path: '/x', image: { image: `${setup.registry.host}/library/absent:1` } }], 'bad2'),
    );
    assert.equal(notPulled.code, GrpcCode.NOT_FOUND, notPulled.details);
    assert.match(notPulled.details, /absent:1.*mounts\[0\]\.image/);
    const listed = await cri.runtime.ListContainers({ filter: { pod_sandbox_id: p.id } });
    assert.deepEqual(
      listed.containers.map((c) => c.metadata?.name),
      ['vol'],
      'nothing created',
    );

    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
    assert.deepEqual(
      (await mountsUnder(setup.dirs.root)).filter((m) => m.includes('image-volumes')),
      [],
      'no image volume left mounted',
    );
    await cri.image.RemoveImage({ image: { image: layered } });
  });
});
