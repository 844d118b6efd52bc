/**
 * Pods in their own user namespace (userns_options mode POD), seen from inside and from the node:
 * root inside is an unprivileged host id, the image's files are root's inside (id-mapped layers),
 * what the container writes belongs to the mapped id on the node, the pod's containers share
 * the namespace and its network, and nothing stays behind.
 */
import assert from 'node:assert/strict';
import { access, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { execSh, createAndStart, rejection, type CriClients } from './harness/cri-client.js';
import { mountsUnder } from './harness/host.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

/** Host ids of the pod's namespace: 65536 of them, far above any real user here. */
const HOST_BASE = 3_000_000;
const MAPS = [{ host_id: HOST_BASE, container_id: 0, length: 65536 }];
const USERNS = { mode: 'POD' as const, uids: MAPS, gids: MAPS };

/** Host pids whose process is in a user namespace mapping container 0 to HOST_BASE. */
async function mappedPids(): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const map = await readFile(`/proc/${name}/uid_map`, 'utf8').catch(() => '');
    if (map.trim().split(/\s+/).join(' ') === `0 ${HOST_BASE} 65536`) out.push(Number(name));
  }
  return out;
}

describe('user namespaces', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let podCount = 0;

  before(async () => {
    setup = await startWithBusybox();
    cri = setup.cri;
  });

  after(async () => {
    await setup.teardown();
  });

  const podConfig = (namespaceOptions: Record<string, unknown>) => {
    const name = `userns${++podCount}`;
    return {
      metadata: { name, namespace: 'e2e-userns', uid: `uid-${name}`, attempt: 0 },
      hostname: name,
      linux: { security_context: { namespace_options: namespaceOptions } },
    };
  };
  const run = async (
    pod: { id: string; config: ReturnType<typeof podConfig> },
    name: string,
    sc: Record<string, unknown> = {},
    mounts: Record<string, unknown>[] = [],
  ) => {
    return createAndStart(cri, pod, {
      metadata: { name },
      image: { image: setup.image },
      command: ['sleep', '1000'],
      mounts,
      linux: { security_context: { namespace_options: { userns_options: USERNS }, ...sc } },
    });
  };
  const sh = (id: string, script: string) => execSh(cri, id, script, { trim: true });

  it('says in Status that this node supports them', async () => {
    const status = await cri.runtime.Status({});
    assert.ok(status.runtime_handlers.length > 0);
    assert.ok(status.runtime_handlers.every((h) => h.features?.user_namespaces === true));
  });

  it('runs a pod as an unprivileged host id that is root inside, with the image’s files root’s', async () => {
    const config = podConfig({ userns_options: USERNS });
    const { pod_sandbox_id: podId } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    const pod = { id: podId, config };
    const a = await run(pod, 'a');
    const b = await run(pod, 'b');

    assert.equal((await sh(a, 'cat /proc/self/uid_map')).out.split(/\s+/).join(' '), `0 ${HOST_BASE} 65536`);
    assert.equal((await sh(a, 'cat /proc/self/gid_map')).out.split(/\s+/).join(' '), `0 ${HOST_BASE} 65536`);
    assert.equal((await sh(a, 'id -u; id -g')).out, '0\n0');
    assert.equal(
      (await sh(a, 'stat -c %u:%g /bin/busybox /etc/passwd')).out,
      '0:0\n0:0',
      'id-mapped image layers',
    );
    assert.equal((await sh(a, 'touch /made-inside && stat -c %u /made-inside')).out, '0');
    assert.equal((await sh(a, 'echo x >> /etc/passwd')).code, 0, 'root inside may change the image’s files');

    // The node sees the mapped ids: the processes run as HOST_BASE, the new file is HOST_BASE's.
    const pids = await mappedPids();
    assert.ok(pids.length >= 3, `pause and two sleeps in the namespace (found ${pids.length})`);
    const uids = await Promise.all(
      pids.map(async (pid) =>
        Number(/^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1]),
      ),
    );
    assert.ok(
      uids.every((uid) => uid >= HOST_BASE && uid < HOST_BASE + 65536),
      `every process runs as a mapped id: ${uids.join(', ')}`,
    );
    // The sleeps are root inside, HOST_BASE outside (the pause process runs as its image's user).
    assert.equal(uids.filter((uid) => uid === HOST_BASE).length, 2, uids.join(', '));
    const upper = join(setup.dirs.root, 'containers', a, 'upper', 'made-inside');
    assert.equal((await stat(upper)).uid, HOST_BASE);

    // Both containers are in one user namespace and one network namespace (lo up), pinned.
    const nsOf = async (id: string) => (await sh(id, 'readlink /proc/self/ns/user /proc/self/ns/net')).out;
    assert.equal(await nsOf(a), await nsOf(b));
    assert.match((await sh(b, 'ip link show lo')).out, /UP/);
    await access(join(setup.dirs.run, 'netns', podId)); // pinned while the pod lives
    // Volumes: kubelet sets the pod's maps on them, and the node's root-owned files are root's
    // inside; without maps they belong to nobody and a 0600 file cannot be read.
    const vol = join(setup.dirs.base, 'userns-volume');
    await mkdir(vol, { recursive: true });
    await writeFile(join(vol, 'secret'), 'for root only\n', { mode: 0o600 });
    const volumes = await run(pod, 'volumes', {}, [
      { container_path: '/mapped', host_path: vol, uidMappings: MAPS, gidMappings: MAPS },
      {
        container_path: '/mapped-file',
        host_path: join(vol, 'secret'),
        uidMappings: MAPS,
        gidMappings: MAPS,
      },
      { container_path: '/unmapped', host_path: vol },
    ]);
    assert.equal(
      (await sh(volumes, 'stat -c %u:%g /mapped/secret; cat /mapped/secret')).out,
      '0:0\nfor root only',
    );
    assert.equal((await sh(volumes, 'cat /mapped-file')).out, 'for root only');
    assert.equal((await sh(volumes, 'stat -c %u /unmapped/secret')).out, '65534');
    assert.match((await sh(volumes, 'cat /unmapped/secret')).err, /Permission denied/);
    assert.equal((await sh(volumes, 'touch /mapped/from-inside')).code, 0);
    assert.equal(
      (await stat(join(vol, 'from-inside'))).uid,
      0,
      'root inside writes as the node’s root through the map',
    );

    // Root inside holds no power over the node: it cannot make device nodes.
    assert.notEqual((await sh(a, 'mknod /tmp/null c 1 3')).code, 0);

    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: podId }, 60_000);
    assert.deepEqual(await mappedPids(), [], 'no process left');
    assert.deepEqual(await mountsUnder(setup.dirs.root), [], 'no id-mapped layer or root left mounted');
    await assert.rejects(access(join(setup.dirs.run, 'netns', podId)), 'the pinned netns is gone');
  });

  it('refuses what it cannot honour, naming the field, creating nothing', async () => {
    const field = /namespace_options\.userns_options/;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ userns_options: { mode: 'CONTAINER', uids: MAPS, gids: MAPS } }, /mode.*CONTAINER/],
      [{ userns_options: { mode: 'POD' } }, /uids.*at least one mapping/],
      [
        { userns_options: { mode: 'POD', uids: MAPS, gids: [{ host_id: 1, container_id: 0, length: 0 }] } },
        /gids\[0\]/,
      ],
      [{ userns_options: USERNS, network: 'NODE' }, /network, PID or IPC/],
    ];
    const podsBefore = (await cri.runtime.ListPodSandbox({})).items.length;
    for (const [options, pattern] of cases) {
      const err = await rejection(cri.runtime.RunPodSandbox({ config: podConfig(options) }, 60_000));
      assert.equal(err.code, GrpcCode.INVALID_ARGUMENT, err.details);
      assert.match(err.details, field);
      assert.match(err.details, pattern);
    }
    assert.equal((await cri.runtime.ListPodSandbox({})).items.length, podsBefore, 'no pod made');

    // Id-mapped volumes are for user-namespaced pods only.
    const plainConfig = podConfig({});
    const { pod_sandbox_id: plainId } = await cri.runtime.RunPodSandbox({ config: plainConfig }, 60_000);
    const mapped = await rejection(
      cri.runtime.CreateContainer({
        pod_sandbox_id: plainId,
        config: {
          metadata: { name: 'mapped' },
          image: { image: setup.image },
          command: ['sleep', '1000'],
          mounts: [
            { container_path: '/v', host_path: setup.dirs.base, uidMappings: MAPS, gidMappings: MAPS },
          ],
        },
        sandbox_config: plainConfig,
      }),
    );
    assert.equal(mapped.code, GrpcCode.INVALID_ARGUMENT, mapped.details);
    assert.match(mapped.details, /uidMappings.*own user namespace/);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: plainId }, 60_000);

    // A container cannot leave its pod's user namespace.
    const config = podConfig({ userns_options: USERNS });
    const { pod_sandbox_id: podId } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    const err = await rejection(
      cri.runtime.CreateContainer({
        pod_sandbox_id: podId,
        config: {
          metadata: { name: 'escape' },
          image: { image: setup.image },
          command: ['sleep', '1000'],
          linux: { security_context: { namespace_options: { userns_options: { mode: 'NODE' } } } },
        },
        sandbox_config: config,
      }),
    );
    assert.equal(err.code, GrpcCode.INVALID_ARGUMENT, err.details);
    assert.match(err.details, /must be the pod's/);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: podId }, 60_000);
  });
});
