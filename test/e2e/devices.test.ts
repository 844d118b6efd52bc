/**
 * CRI devices and a privileged container's host devices, observed from inside a real container:
 * the node exists with the host's type and numbers, the device cgroup allows exactly the access
 * asked for (read, write, mknod), and bad input fails with INVALID_ARGUMENT naming the field.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import type { Device } from '../../src/generated/runtime/v1/Device.js';
import { runCommand } from '../../src/util/command.js';
import { createAndStart, rejection, type CriClients } from './harness/cri-client.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

describe('devices, seen from inside the container', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let image: string;
  /**
   * Host device nodes the tests hand in: null (1:3), an unclaimed device of the local-use major 60
   * (60:0), and a directory holding 60:1 and 1:3.
   */
  let nodes: { nul: string; exp: string; dir: string };
  let podCount = 0;
  const pods: string[] = [];

  async function runPod(privileged = false) {
    const name = `dev${++podCount}`;
    const config = {
      metadata: { name, namespace: 'e2e-devices', uid: `uid-${name}`, attempt: 0 },
      hostname: name,
      log_directory: join(setup.dirs.base, 'logs', name),
      linux: { security_context: { privileged } },
    };
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    pods.push(pod_sandbox_id);
    return { id: pod_sandbox_id, config };
  }
  type Pod = Awaited<ReturnType<typeof runPod>>;

  const containerConfig = (name: string, devices: Device[], privileged = false) => ({
    metadata: { name, attempt: 0 },
    image: { image },
    command: ['sleep', '1000'],
    devices,
    linux: { security_context: { privileged } },
  });

  async function run(pod: Pod, name: string, devices: Device[], privileged = false): Promise<string> {
    return createAndStart(cri, pod, containerConfig(name, devices, privileged));
  }

  async function sh(id: string, script: string): Promise<{ code: number; out: string; err: string }> {
    const res = await cri.runtime.ExecSync({ container_id: id, cmd: ['sh', '-c', script], timeout: '10' });
    return { code: res.exit_code, out: res.stdout.toString(), err: res.stderr.toString() };
  }

  /** "c 1 3" for a character device 1:3, from busybox stat. */
  const kind = async (id: string, p: string) => (await sh(id, `stat -c '%F %t %T' ${p}`)).out.trim();

  before(async () => {
    setup = await startWithBusybox();
    ({ cri, image } = setup);
    const dir = join(setup.dirs.base, 'devnodes');
    nodes = { nul: join(dir, 'mynull'), exp: join(dir, 'exp'), dir: join(dir, 'group') };
    await mkdir(nodes.dir, { recursive: true });
    await runCommand('mknod', ['-m', '0666', nodes.nul, 'c', '1', '3'], { timeoutMs: 10_000 });
    await runCommand('mknod', ['-m', '0666', nodes.exp, 'c', '60', '0'], { timeoutMs: 10_000 });
    await runCommand('mknod', [join(nodes.dir, 'a'), 'c', '60', '1'], { timeoutMs: 10_000 });
    await runCommand('mknod', [join(nodes.dir, 'b'), 'c', '1', '3'], { timeoutMs: 10_000 });
  });

  afterEach(async () => {
    for (const id of pods.splice(0)) await cri.runtime.RemovePodSandbox({ pod_sandbox_id: id }, 60_000);
  });

  after(async () => {
    await setup.teardown();
  });

  it('creates each device at its container path with exactly the access asked for', async () => {
    const pod = await runPod();
    const id = await run(pod, 'devs', [
      { host_path: nodes.nul, container_path: '/dev/mynull', permissions: 'rwm' },
      { host_path: nodes.exp, container_path: '/dev/exp-r', permissions: 'r' },
      { host_path: nodes.dir, container_path: '/dev/group', permissions: 'rw' },
    ]);
    assert.equal(await kind(id, '/dev/mynull'), 'character special file 1 3');
    assert.equal(await kind(id, '/dev/exp-r'), 'character special file 3c 0');
    assert.equal(await kind(id, '/dev/group/a'), 'character special file 3c 1');
    assert.equal(await kind(id, '/dev/group/b'), 'character special file 1 3');
    assert.equal((await sh(id, 'echo hi > /dev/mynull')).code, 0);

    // Major 60 is reserved for local use and has no driver: an open the device cgroup allows
    // reaches the kernel and fails with ENXIO, one it refuses fails with EPERM.
    assert.match((await sh(id, 'cat /dev/exp-r')).err, /No such device or address/, 'r: read allowed');
    assert.match((await sh(id, 'echo x > /dev/exp-r')).err, /Operation not permitted/, 'r: write refused');
    assert.match(
      (await sh(id, 'echo x > /dev/group/a')).err,
      /No such device or address/,
      'rw: write allowed',
    );
    // The cgroup rule is for the device, wherever its node is.
    assert.match((await sh(id, 'mknod /tmp/n c 60 0 && cat /tmp/n')).err, /No such device or address/);

    // A container without devices has none of them, and the cgroup refuses a node it makes.
    const plain = await run(pod, 'plain', []);
    assert.notEqual((await sh(plain, 'test -e /dev/exp-r')).code, 0);
    assert.match((await sh(plain, 'mknod /tmp/n c 60 0 && cat /tmp/n')).err, /Operation not permitted/);
  });

  it("gives a privileged container the host's devices", async () => {
    const host = await runCommand('stat', ['-c', '%F %t %T', '/dev/loop0'], { timeoutMs: 10_000 });
    const pod = await runPod(true);
    const priv = await run(pod, 'priv', [], true);
    assert.equal(await kind(priv, '/dev/loop0'), host.stdout.trim());
    assert.equal((await sh(priv, 'test -c /dev/kmsg')).code, 0, '/dev/kmsg is there');
    const plain = await run(pod, 'plain', []);
    assert.notEqual((await sh(plain, 'test -e /dev/loop0')).code, 0, 'not in a plain container');
  });

  it('refuses bad devices naming the field, creating nothing', async () => {
    const pod = await runPod();
    const cases: [Device, RegExp][] = [
      [
        { host_path: nodes.nul, container_path: '/dev/x', permissions: 'rx' },
        /devices\[0\]\.permissions.*"rx"/,
      ],
      [
        { host_path: '/dev/nonexistent-device', container_path: '/dev/x', permissions: 'r' },
        /devices\[0\]\.host_path.*does not exist/,
      ],
      [
        { host_path: '/etc/hostname', container_path: '/dev/x', permissions: 'r' },
        /devices\[0\]\.host_path.*not a character or block device/,
      ],
      [
        { host_path: nodes.nul, container_path: 'dev/x', permissions: 'r' },
        /devices\[0\]\.container_path.*not an absolute path/,
      ],
    ];
    for (const [device, pattern] of cases) {
      const err = await rejection(
        cri.runtime.CreateContainer({
          pod_sandbox_id: pod.id,
          config: containerConfig('bad', [device]),
          sandbox_config: pod.config,
        }),
      );
      assert.equal(err.code, GrpcCode.INVALID_ARGUMENT, err.details);
      assert.match(err.details, pattern);
    }
    const listed = await cri.runtime.ListContainers({ filter: { pod_sandbox_id: pod.id } });
    assert.equal(listed.containers.length, 0, 'nothing created');
  });
});
