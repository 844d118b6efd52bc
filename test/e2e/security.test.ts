/**
 * Security context, namespaces and sysctls, each observed from inside a real container through
 * ExecSync (`id`, /proc/self/status, /proc/self/mountinfo, `ps`, /proc/sys, namespace links),
 * never by reading the spec crisp wrote. Bad input fails with INVALID_ARGUMENT naming the field
 * and the value, and leaves no pod or container behind.
 */
import assert from 'node:assert/strict';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { createAndStart, rejection, type CriClients } from './harness/cri-client.js';
import { busyboxImage } from './harness/test-images.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

/** The capability numbers of containerd's default set (Docker's 14). */
const DEFAULT_CAP_BITS = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];
const CAP_CHOWN = 0;
const CAP_NET_ADMIN = 12;

const mask = (bits: readonly number[]): bigint => bits.reduce((m, b) => m | (1n << BigInt(b)), 0n);

/** The named capability masks (CapEff, CapBnd, ...) and NoNewPrivs of a /proc/<pid>/status. */
function parseStatus(text: string): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const line of text.split('\n')) {
    const m = /^(Cap\w+|NoNewPrivs):\s+([0-9a-f]+)$/.exec(line);
    if (m?.[1] && m[2]) out[m[1]] = BigInt(m[1] === 'NoNewPrivs' ? m[2] : `0x${m[2]}`);
  }
  return out;
}

/** The mount options of `dest` in a /proc/self/mountinfo, undefined if not a mount point. */
function mountOptions(mountinfo: string, dest: string): string[] | undefined {
  const line = mountinfo.split('\n').find((l) => l.split(' ')[4] === dest);
  return line?.split(' ')[5]?.split(',');
}

/** crisp's capabilities are the test's (both run as the same root). */
const HOST_CAPS = parseStatus(await readFile('/proc/self/status', 'utf8'));

describe('security context, namespaces and sysctls, seen from inside the container', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let image: string;
  /** The busybox image with User "app". */
  let appImage: string;
  let logDir: string;
  let podCount = 0;

  type PodConfig = ReturnType<typeof podConfig>;
  const podConfig = (linux: Record<string, unknown> = {}, name = `sec${++podCount}`) => ({
    metadata: { name, namespace: 'e2e-security', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: join(logDir, name),
    linux,
  });

  /** Pods of the running test, removed after it even when it fails. */
  const pods: string[] = [];

  async function runPod(linux: Record<string, unknown> = {}) {
    const config = podConfig(linux);
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    pods.push(pod_sandbox_id);
    return { id: pod_sandbox_id, config };
  }
  type Pod = Awaited<ReturnType<typeof runPod>>;

  const containerConfig = (
    name: string,
    securityContext: Record<string, unknown> = {},
    extra: Record<string, unknown> = {},
  ) => ({
    metadata: { name, attempt: 0 },
    image: { image },
    command: ['sleep', '1000'],
    log_path: `${name}.log`,
    // kubelet always sends namespace options: a PID namespace of the container's own unless
    // asked otherwise (left out, they would be the proto's zero values: the pod's).
    linux: { security_context: { namespace_options: { pid: 'CONTAINER' as const }, ...securityContext } },
    ...extra,
  });

  /** Creates and starts a container (sleep 1000 unless `extra` says otherwise). */
  async function run(
    pod: Pod,
    name: string,
    securityContext: Record<string, unknown> = {},
    extra: Record<string, unknown> = {},
  ): Promise<string> {
    return createAndStart(cri, pod, containerConfig(name, securityContext, extra));
  }

  /** The CreateContainer failure for this security context. */
  const createFails = (pod: Pod, securityContext: Record<string, unknown>, extra = {}) =>
    rejection(
      cri.runtime.CreateContainer({
        pod_sandbox_id: pod.id,
        config: containerConfig('bad', securityContext, extra),
        sandbox_config: pod.config,
      }),
    );

  async function sh(id: string, script: string): Promise<{ code: number; out: string; err: string }> {
    const res = await cri.runtime.ExecSync({ container_id: id, cmd: ['sh', '-c', script], timeout: '10' });
    return { code: res.exit_code, out: res.stdout.toString(), err: res.stderr.toString() };
  }

  /** stdout of a script that must succeed. */
  async function out(id: string, script: string): Promise<string> {
    const res = await sh(id, script);
    assert.equal(res.code, 0, `${script}: exit ${res.code}: ${res.err}`);
    return res.out;
  }

  const status = async (id: string) => parseStatus(await out(id, 'cat /proc/self/status'));
  const mountinfo = (id: string) => out(id, 'cat /proc/self/mountinfo');
  const remove = (pod: Pod) => cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);

  before(async () => {
    setup = await startWithBusybox();
    ({ cri, image } = setup);
    logDir = join(setup.dirs.base, 'logs');
    await setup.registry.push('library/busybox-app', '1.0', await busyboxImage({ config: { user: 'app' } }));
    appImage = `${setup.registry.host}/library/busybox-app:1.0`;
    await cri.image.PullImage({ image: { image: appImage } }, 60_000);
  });

  afterEach(async () => {
    for (const id of pods.splice(0)) await cri.runtime.RemovePodSandbox({ pod_sandbox_id: id }, 60_000);
  });

  after(async () => {
    await setup.teardown();
  });

  // --- users and groups --------------------------------------------------------------------------

  it('runs as the requested user, group, username and groups, or the image User', async () => {
    const pod = await runPod();
    const ids = async (id: string) => (await out(id, 'echo $(id -u) $(id -g) / $(id -G)')).trim();

    const root = await run(pod, 'root');
    assert.equal(await ids(root), '0 0 / 0', 'no user anywhere: 0:0');

    const uid = await run(pod, 'uid', { run_as_user: { value: 1234 } });
    assert.equal(await ids(uid), '1234 0 / 0', 'a uid not in /etc/passwd keeps gid 0');

    const uidGid = await run(pod, 'uidgid', { run_as_user: { value: 1234 }, run_as_group: { value: 5678 } });
    assert.equal(await ids(uidGid), '1234 5678 / 5678');

    const byName = await run(pod, 'byname', { run_as_username: 'app' });
    assert.equal(await ids(byName), '1000 1000 / 1000 2000', "app's gid and its group extra");

    const byUid = await run(pod, 'byuid', { run_as_user: { value: 1000 } });
    assert.equal(await ids(byUid), '1000 1000 / 1000 2000', 'uid 1000 is app, with its groups');

    const merged = await run(pod, 'merge', {
      run_as_username: 'app',
      supplemental_groups: [3000, 4000],
    });
    assert.equal(await ids(merged), '1000 1000 / 1000 2000 3000 4000', 'Merge is the default');

    const strict = await run(pod, 'strict', {
      run_as_user: { value: 1000 },
      supplemental_groups: [3000],
      supplemental_groups_policy: 'Strict',
    });
    assert.equal(await ids(strict), '1000 1000 / 1000 3000', 'Strict: not the groups of /etc/group');
    const features = (await cri.runtime.Status({})).features;
    assert.equal(features?.supplemental_groups_policy, true, 'Status says Strict is honoured');

    const fromImage = await run(pod, 'image-user', {}, { image: { image: appImage } });
    assert.equal(await ids(fromImage), '1000 1000 / 1000 2000', "the image's User app");

    const overImage = await run(
      pod,
      'over-image',
      { run_as_user: { value: 0 } },
      { image: { image: appImage } },
    );
    assert.equal(await ids(overImage), '0 0 / 0', 'run_as_user 0 wins over the image User');

    const noUser = await createFails(pod, { run_as_group: { value: 5678 } });
    assert.equal(noUser.code, GrpcCode.INVALID_ARGUMENT, noUser.details);
    assert.match(noUser.details, /run_as_group/);

    const unknownName = await createFails(pod, { run_as_username: 'nosuchuser' });
    assert.match(unknownName.details, /"nosuchuser".*\/etc\/passwd/);
    await remove(pod);
  });

  // --- privileges --------------------------------------------------------------------------------

  it('gives the default capabilities, adds, drops and drops ALL', async () => {
    const pod = await runPod();
    const def = await status(await run(pod, 'default'));
    assert.equal(def.CapEff, mask(DEFAULT_CAP_BITS), `CapEff ${def.CapEff?.toString(16)}`);
    assert.equal(def.CapBnd, mask(DEFAULT_CAP_BITS), `CapBnd ${def.CapBnd?.toString(16)}`);
    assert.equal(def.CapPrm, mask(DEFAULT_CAP_BITS));
    assert.equal(def.NoNewPrivs, 0n, 'no_new_privs is off unless asked for');

    const added = await status(await run(pod, 'add', { capabilities: { add_capabilities: ['NET_ADMIN'] } }));
    assert.equal(added.CapEff, mask([...DEFAULT_CAP_BITS, CAP_NET_ADMIN]));

    const noChown = await run(pod, 'drop', { capabilities: { drop_capabilities: ['CHOWN'] } });
    const dropped = await status(noChown);
    assert.equal(dropped.CapEff, mask(DEFAULT_CAP_BITS.filter((b) => b !== CAP_CHOWN)));
    const chown = await sh(noChown, 'touch /tmp/f && chown 1000 /tmp/f');
    assert.notEqual(chown.code, 0, 'chown needs CAP_CHOWN');
    assert.match(chown.err, /not permitted/i);

    const none = await run(pod, 'drop-all', {
      capabilities: { drop_capabilities: ['ALL'], add_capabilities: ['KILL'] },
    });
    const noneStatus = await status(none);
    assert.equal(noneStatus.CapEff, mask([5]), 'ALL dropped first, then KILL added');
    assert.equal(noneStatus.CapBnd, mask([5]));

    const nnp = await status(await run(pod, 'nnp', { no_new_privs: true }));
    assert.equal(nnp.NoNewPrivs, 1n);

    const unknown = await createFails(pod, { capabilities: { add_capabilities: ['NOT_A_CAP'] } });
    assert.equal(unknown.code, GrpcCode.INVALID_ARGUMENT, unknown.details);
    assert.match(unknown.details, /add_capabilities\[0\].*NOT_A_CAP/);
    // Dropping a capability Linux does not have takes nothing away: ignored, as containerd does.
    const unknownDrop = await status(
      await run(pod, 'dropnope', { capabilities: { drop_capabilities: ['CHOWN', 'cap_nope'] } }),
    );
    assert.equal(unknownDrop.CapEff, mask(DEFAULT_CAP_BITS.filter((b) => b !== 0)), 'CHOWN (bit 0) dropped');
    await remove(pod);
  });

  it('masks and write-protects the default paths, or the ones the request gives', async () => {
    const pod = await runPod();
    const def = await run(pod, 'default');
    // /proc/kcore is masked too where the kernel has it (this one does not).
    assert.ok((await readFile('/proc/timer_list', 'utf8')).length > 0, 'the host has a /proc/timer_list');
    assert.equal(await out(def, 'wc -c < /proc/timer_list'), '0\n', '/proc/timer_list reads as empty');
    assert.equal(await out(def, 'wc -c < /proc/keys'), '0\n', '/proc/keys reads as empty');
    const mi = await mountinfo(def);
    for (const masked of ['/proc/timer_list', '/proc/keys', '/proc/acpi', '/sys/firmware']) {
      assert.ok(mountOptions(mi, masked), `${masked} is masked`);
    }
    assert.ok(mountOptions(mi, '/proc/sys')?.includes('ro'), '/proc/sys is read-only');
    const write = await sh(def, 'echo 1 > /proc/sys/kernel/shm_rmid_forced');
    assert.notEqual(write.code, 0, 'writing under /proc/sys fails');
    assert.match(write.err, /read-only/i);
    assert.ok(mountOptions(mi, '/sys')?.includes('ro'), '/sys is read-only');

    const custom = await run(pod, 'custom', {
      masked_paths: ['/proc/version'],
      readonly_paths: ['/home/app'],
    });
    assert.equal(await out(custom, 'cat /proc/version'), '', '/proc/version masked');
    const cmi = await mountinfo(custom);
    assert.equal(mountOptions(cmi, '/proc/timer_list'), undefined, 'the defaults are replaced, not added to');
    assert.notEqual(await out(custom, 'wc -c < /proc/timer_list'), '0\n');
    assert.equal(mountOptions(cmi, '/proc/sys'), undefined);
    const home = await sh(custom, 'touch /home/app/x');
    assert.notEqual(home.code, 0);
    assert.match(home.err, /read-only/i);
    await remove(pod);
  });

  it('makes the root filesystem read-only, but not /dev/shm', async () => {
    const pod = await runPod();
    const id = await run(pod, 'ro', { readonly_rootfs: true });
    for (const path of ['/x', '/tmp/x', '/etc/hostname']) {
      const res = await sh(id, `echo x > ${path}`);
      assert.notEqual(res.code, 0, `${path} is not writable`);
      assert.match(res.err, /read-only/i);
    }
    assert.equal(await out(id, 'echo ok > /dev/shm/x && cat /dev/shm/x'), 'ok\n');
    const rw = await run(pod, 'rw');
    assert.equal(await out(rw, 'echo ok > /tmp/x && cat /tmp/x'), 'ok\n', 'writable without it');
    await remove(pod);
  });

  it('refuses a privileged container in a pod that is not privileged', async () => {
    const plain = await runPod();
    const refused = await createFails(plain, { privileged: true });
    assert.equal(refused.code, GrpcCode.INVALID_ARGUMENT, refused.details);
    assert.match(refused.details, /security_context\.privileged/);
    assert.equal(
      (await cri.runtime.ListContainers({ filter: { pod_sandbox_id: plain.id } })).containers.length,
      0,
    );
    await remove(plain);
  });

  it('applies AppArmor only where the node has it: the default runs, a named profile is refused clearly here', async () => {
    const enabled =
      (await readFile('/sys/module/apparmor/parameters/enabled', 'utf8').catch(() => 'N')).trim() === 'Y';
    const pod = await runPod();
    const id = await run(pod, 'aa-default', { apparmor: { profile_type: 'RuntimeDefault' } });
    assert.equal(await out(id, 'echo ok'), 'ok\n');
    await run(pod, 'aa-unconfined', { apparmor_profile: 'unconfined' });
    if (!enabled) {
      const named = await createFails(pod, {
        apparmor: { profile_type: 'Localhost', localhost_ref: 'crisp-test' },
      });
      assert.equal(named.code, GrpcCode.FAILED_PRECONDITION, named.details);
      assert.match(named.details, /AppArmor profile "crisp-test".*not enabled on this node/);
      const legacy = await createFails(pod, { apparmor_profile: 'localhost/crisp-test' });
      assert.equal(legacy.code, GrpcCode.FAILED_PRECONDITION, legacy.details);
    }
    const bad = await createFails(pod, { apparmor_profile: 'nonsense' });
    assert.equal(bad.code, GrpcCode.INVALID_ARGUMENT, bad.details);
    assert.match(bad.details, /apparmor_profile/);
    await remove(pod);
  });

  it('runs a privileged container in a privileged pod: every capability, nothing masked, rw /sys', async () => {
    const pod = await runPod({ security_context: { privileged: true } });
    const id = await run(pod, 'priv', { privileged: true });
    const st = await status(id);
    assert.equal(st.CapEff, HOST_CAPS.CapBnd, 'every capability crisp holds');
    assert.equal(st.CapBnd, HOST_CAPS.CapBnd);
    const mi = await mountinfo(id);
    assert.equal(mountOptions(mi, '/proc/timer_list'), undefined, 'nothing masked');
    assert.equal(mountOptions(mi, '/proc/sys'), undefined, 'nothing read-only');
    assert.ok(mountOptions(mi, '/sys')?.includes('rw'), '/sys is writable');
    assert.notEqual(await out(id, 'wc -c < /proc/timer_list'), '0\n', '/proc/timer_list is readable');
    const all = await status(await run(pod, 'add-all', { capabilities: { add_capabilities: ['ALL'] } }));
    assert.equal(all.CapEff, HOST_CAPS.CapBnd, 'add ALL: every capability crisp holds');
    // A plain container of the same pod keeps the defaults.
    const other = await status(await run(pod, 'plain'));
    assert.equal(other.CapEff, mask(DEFAULT_CAP_BITS));
    await remove(pod);
  });

  // --- namespaces --------------------------------------------------------------------------------

  it('gives a container its own PID namespace, the pod one, or the target container one', async () => {
    const psArgs = async (id: string) =>
      (await out(id, 'ps -o pid,args'))
        .split('\n')
        .slice(1)
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.includes('ps -o') && !l.includes('sh -c'));

    const own = await runPod();
    const a = await run(own, 'a', {}, { command: ['sleep', '4242'] });
    const debug = await run(
      own,
      'debug',
      { namespace_options: { pid: 'TARGET', target_id: a } },
      { command: ['sleep', '4343'] },
    );
    const b = await run(own, 'b', { namespace_options: { pid: 'CONTAINER' } });
    assert.deepEqual(await psArgs(b), ['1 sleep 1000'], 'only its own process, as pid 1');
    const seen = await psArgs(debug);
    assert.ok(seen.includes('1 sleep 4242'), `the target's process is pid 1: ${seen.join('; ')}`);
    assert.ok(
      seen.some((l) => l.endsWith('sleep 4343')),
      'the debug container runs in it',
    );
    assert.ok(!seen.some((l) => l.includes('catatonit')), 'not the pod namespace');
    await remove(own);

    const shared = await runPod({ security_context: { namespace_options: { pid: 'POD' } } });
    const c = await run(shared, 'c', { namespace_options: { pid: 'POD' } }, { command: ['sleep', '4444'] });
    const d = await run(shared, 'd', { namespace_options: { pid: 'POD' } }, { command: ['sleep', '4545'] });
    const inD = await psArgs(d);
    assert.match(inD[0] ?? '', /^1 \/catatonit -P$/, `the pause process is pid 1: ${inD.join('; ')}`);
    assert.ok(
      inD.some((l) => l.endsWith('sleep 4444')),
      "the other container's process is visible",
    );
    assert.ok((await psArgs(c)).some((l) => l.endsWith('sleep 4545')));
    await remove(shared);
  });

  it('shares the host PID, IPC and network namespaces when the pod asks for them', async () => {
    const hostNs = async (ns: string) => readlink(`/proc/self/ns/${ns}`);
    const hostInit = (await readFile('/proc/1/cmdline', 'utf8')).replaceAll('\0', ' ').trim();

    const isolated = await runPod();
    const iso = await run(isolated, 'iso');
    // A container may ask for the node's PID namespace in a pod that does not share it (CRI-O's
    // rule; kubelet asks only for hostPID pods, for the pod and its containers alike).
    const nodePid = await run(isolated, 'nodepid', { namespace_options: { pid: 'NODE' } });
    assert.equal((await out(nodePid, 'readlink /proc/self/ns/pid')).trim(), await hostNs('pid'));
    assert.notEqual((await out(iso, 'readlink /proc/self/ns/ipc')).trim(), await hostNs('ipc'));
    assert.notEqual((await out(iso, 'readlink /proc/self/ns/net')).trim(), await hostNs('net'));
    assert.equal((await out(iso, "tr '\\0' ' ' < /proc/1/cmdline")).trim(), 'sleep 1000');
    await remove(isolated);

    const pod = await runPod({
      security_context: { namespace_options: { pid: 'NODE', ipc: 'NODE', network: 'NODE' } },
    });
    const id = await run(pod, 'host', { namespace_options: { pid: 'NODE', ipc: 'NODE', network: 'NODE' } });
    assert.equal((await out(id, "tr '\\0' ' ' < /proc/1/cmdline")).trim(), hostInit, "pid 1 is the host's");
    assert.equal((await out(id, 'readlink /proc/self/ns/pid')).trim(), await hostNs('pid'));
    assert.equal((await out(id, 'readlink /proc/self/ns/ipc')).trim(), await hostNs('ipc'));
    assert.equal((await out(id, 'readlink /proc/self/ns/net')).trim(), await hostNs('net'));
    const hostIfaces = (await readdir('/sys/class/net')).filter((n) => n !== 'lo');
    const inside = await out(id, 'cat /proc/net/dev');
    assert.ok(hostIfaces.length > 0, 'the host has an interface other than lo');
    for (const name of hostIfaces) assert.ok(inside.includes(`${name}:`), `${name} is visible inside`);
    await remove(pod);
  });

  // --- sysctls -----------------------------------------------------------------------------------

  it("writes the pod's namespaced sysctls where its containers see them", async () => {
    const pod = await runPod({
      sysctls: {
        'net.ipv4.ip_local_port_range': '1024 65000',
        'kernel.shm_rmid_forced': '1',
        'net/ipv4/ping_group_range': '0 2147483647',
      },
    });
    const id = await run(pod, 'sysctl');
    assert.match(await out(id, 'cat /proc/sys/net/ipv4/ip_local_port_range'), /^1024\s+65000\n$/);
    assert.equal(await out(id, 'cat /proc/sys/kernel/shm_rmid_forced'), '1\n');
    assert.match(await out(id, 'cat /proc/sys/net/ipv4/ping_group_range'), /^0\s+2147483647\n$/);
    const hostRange = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
    assert.doesNotMatch(hostRange, /^1024\s+65000\n$/, "the host's value is untouched");
    await remove(pod);
  });

  it('refuses a sysctl that is not namespaced, unknown, or in a namespace the pod shares with the host', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ sysctls: { 'vm.swappiness': '10' } }, 'vm.swappiness'],
      [{ sysctls: { 'kernel.nonexistent': '1' } }, 'kernel.nonexistent'],
      [{ sysctls: { 'net.ipv4.no_such_thing': '1' } }, 'net.ipv4.no_such_thing'],
      [
        {
          sysctls: { 'net.ipv4.ip_forward': '1' },
          security_context: { namespace_options: { network: 'NODE' } },
        },
        'net.ipv4.ip_forward',
      ],
      [
        {
          sysctls: { 'kernel.shm_rmid_forced': '1' },
          security_context: { namespace_options: { ipc: 'NODE' } },
        },
        'kernel.shm_rmid_forced',
      ],
    ];
    const names: string[] = [];
    for (const [linux, name] of cases) {
      const config: PodConfig = podConfig(linux);
      names.push(config.metadata.name);
      const err = await rejection(cri.runtime.RunPodSandbox({ config }, 60_000));
      assert.equal(err.code, GrpcCode.INVALID_ARGUMENT, `${name}: ${err.details}`);
      assert.ok(err.details.includes(name), err.details);
      assert.match(err.details, /sysctls/);
    }
    const left = (await cri.runtime.ListPodSandbox({})).items.filter((p) =>
      names.includes(p.metadata?.name ?? ''),
    );
    assert.deepEqual(left, [], 'no pod half-made');
  });

  // --- bad input ---------------------------------------------------------------------------------

  it('refuses absurd resources naming the field and value', async () => {
    const pod = await runPod();
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ cpu_shares: '-2' }, /cpu_shares.*-2/],
      [{ cpu_quota: '-5' }, /cpu_quota.*-5/],
      [{ cpu_quota: '500' }, /cpu_quota.*500/],
      [{ cpu_period: '-1' }, /cpu_period.*-1/],
      [{ cpu_period: '2000000' }, /cpu_period.*2000000/],
      [{ memory_limit_in_bytes: '1024' }, /memory_limit_in_bytes.*1024/],
      [{ memory_limit_in_bytes: '-1' }, /memory_limit_in_bytes.*-1/],
    ];
    for (const [resources, pattern] of cases) {
      const err = await rejection(
        cri.runtime.CreateContainer({
          pod_sandbox_id: pod.id,
          config: { ...containerConfig('bad'), linux: { resources } },
          sandbox_config: pod.config,
        }),
      ).catch((e: unknown) => {
        throw new Error(`${JSON.stringify(resources)}: ${String(e)}`);
      });
      assert.equal(err.code, GrpcCode.INVALID_ARGUMENT, err.details);
      assert.match(err.details, pattern);
    }
    const listed = await cri.runtime.ListContainers({ filter: { pod_sandbox_id: pod.id } });
    assert.equal(listed.containers.length, 0, 'nothing created');
    const smallest = await run(
      pod,
      'smallest',
      {},
      { linux: { resources: { memory_limit_in_bytes: String(4 << 20) } } },
    );
    assert.equal(await out(smallest, 'echo ok'), 'ok\n', 'the minimum, 4 MiB, is enough to run');
    await remove(pod);
  });
});
