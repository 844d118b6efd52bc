/**
 * seccomp, observed from inside real containers: the Seccomp: mode of /proc/self/status, and
 * syscalls that fail only because of the filter (the capability set is the same with and without
 * it). RuntimeDefault is crisp's profile (data/seccomp-default.json), Localhost a file the test
 * writes, both through the SecurityProfile field and the deprecated seccomp_profile_path.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { createAndStart, rejection, type CriClients } from './harness/cri-client.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

describe('seccomp, seen from inside the container', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let image: string;
  let podCount = 0;
  const pods: string[] = [];

  const podConfig = (name: string) => ({
    metadata: { name, namespace: 'e2e-seccomp', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: join(setup.dirs.base, 'logs', name),
    linux: {},
  });

  async function runPod() {
    const config = podConfig(`sec${++podCount}`);
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    pods.push(pod_sandbox_id);
    return { id: pod_sandbox_id, config };
  }
  type Pod = Awaited<ReturnType<typeof runPod>>;

  const containerConfig = (name: string, securityContext: Record<string, unknown>) => ({
    metadata: { name, attempt: 0 },
    image: { image },
    command: ['sleep', '1000'],
    log_path: `${name}.log`,
    linux: { security_context: securityContext },
  });

  async function run(pod: Pod, name: string, securityContext: Record<string, unknown> = {}): Promise<string> {
    return createAndStart(cri, pod, containerConfig(name, securityContext));
  }

  const createFails = (pod: Pod, securityContext: Record<string, unknown>) =>
    rejection(
      cri.runtime.CreateContainer({
        pod_sandbox_id: pod.id,
        config: containerConfig('bad', securityContext),
        sandbox_config: pod.config,
      }),
    );

  async function sh(id: string, script: string): Promise<{ code: number; out: string; err: string }> {
    const res = await cri.runtime.ExecSync({ container_id: id, cmd: ['sh', '-c', script], timeout: '10' });
    return { code: res.exit_code, out: res.stdout.toString(), err: res.stderr.toString() };
  }

  /** The seccomp mode of the container's processes: 0 none, 2 filter. */
  async function seccompMode(id: string): Promise<string> {
    const res = await sh(id, 'grep ^Seccomp: /proc/self/status');
    assert.equal(res.code, 0, res.err);
    return res.out.replace(/^Seccomp:\s*/, '').trim();
  }

  /** Whether a script succeeds; a failure must be EPERM (not some other breakage). */
  async function permitted(id: string, script: string): Promise<boolean> {
    const res = await sh(id, script);
    if (res.code !== 0) assert.match(res.err, /Operation not permitted/, `${script}: ${res.err}`);
    return res.code === 0;
  }

  const RUNTIME_DEFAULT = { seccomp: { profile_type: 'RuntimeDefault' } };
  const UNCONFINED = { seccomp: { profile_type: 'Unconfined' } };
  const localhost = (ref: string) => ({ seccomp: { profile_type: 'Localhost', localhost_ref: ref } });
  const SYS_ADMIN = { capabilities: { add_capabilities: ['SYS_ADMIN'], drop_capabilities: [] } };

  before(async () => {
    setup = await startWithBusybox();
    ({ cri, image } = setup);
  });

  afterEach(async () => {
    for (const id of pods.splice(0)) await cri.runtime.RemovePodSandbox({ pod_sandbox_id: id }, 60_000);
  });

  after(async () => {
    await setup.teardown();
  });

  it('RuntimeDefault filters syscalls the capabilities alone would allow; Unconfined and unset do not', async () => {
    const pod = await runPod();
    const def = await run(pod, 'default', RUNTIME_DEFAULT);
    const unconfined = await run(pod, 'unconfined', UNCONFINED);
    const unset = await run(pod, 'unset');

    assert.equal(await seccompMode(def), '2');
    assert.equal(await seccompMode(unconfined), '0');
    assert.equal(await seccompMode(unset), '0', 'an unset profile is Unconfined');

    // An ordinary busybox workload runs under the filter.
    const ok = await sh(
      def,
      'id -u && cat /proc/self/cmdline >/dev/null && ps >/dev/null && sleep 0.1 && echo fine',
    );
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /^0\nfine\n$/);

    // A user namespace needs no capability: only the filter (unshare, clone flags) stops it.
    assert.equal(await permitted(unconfined, 'unshare -U true'), true, 'unconfined: user namespace');
    assert.equal(await permitted(def, 'unshare -U true'), false, 'RuntimeDefault blocks unshare');

    // With CAP_SYS_ADMIN the default profile allows what Docker's allows with it.
    const admin = await run(pod, 'admin', { ...RUNTIME_DEFAULT, ...SYS_ADMIN });
    assert.equal(await seccompMode(admin), '2');
    assert.equal(await permitted(admin, 'unshare -m true'), true, 'unshare with CAP_SYS_ADMIN');
    assert.equal(await permitted(admin, 'hostname sec-admin'), true, 'sethostname with CAP_SYS_ADMIN');
  });

  it('a privileged container gets no filter even when RuntimeDefault is asked for', async () => {
    const config = { ...podConfig(`sec${++podCount}`), linux: { security_context: { privileged: true } } };
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    pods.push(pod_sandbox_id);
    const id = await run({ id: pod_sandbox_id, config }, 'priv', { ...RUNTIME_DEFAULT, privileged: true });
    assert.equal(await seccompMode(id), '0');
  });

  it('a Localhost profile applies exactly its rules', async () => {
    const file = join(setup.dirs.base, 'no-sethostname.json');
    await writeFile(
      file,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['sethostname'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
      }),
    );
    const pod = await runPod();
    const local = await run(pod, 'local', { ...localhost(file), ...SYS_ADMIN });
    const free = await run(pod, 'free', { ...UNCONFINED, ...SYS_ADMIN });
    assert.equal(await seccompMode(local), '2');
    assert.equal(await permitted(free, 'hostname sec-free'), true, 'same caps, unconfined: allowed');
    assert.equal(await permitted(local, 'hostname sec-local'), false, 'sethostname is filtered');
    assert.equal(await permitted(local, 'unshare -U true'), true, 'not the default profile');
  });

  it('a missing, relative or invalid Localhost profile fails CreateContainer with the path', async () => {
    const pod = await runPod();
    const missing = join(setup.dirs.base, 'no-such-profile.json');
    const err = await createFails(pod, localhost(missing));
    assert.equal(err.code, GrpcCode.INVALID_ARGUMENT, err.details);
    assert.ok(err.details.includes(missing), err.details);
    assert.match(err.details, /seccomp\.localhost_ref/);

    const relative = await createFails(pod, localhost('profiles/x.json'));
    assert.equal(relative.code, GrpcCode.INVALID_ARGUMENT, relative.details);
    assert.match(relative.details, /profiles\/x\.json.*absolute/);

    const invalid = join(setup.dirs.base, 'invalid.json');
    await writeFile(invalid, '{"syscalls": []}');
    const noDefault = await createFails(pod, localhost(invalid));
    assert.equal(noDefault.code, GrpcCode.INVALID_ARGUMENT, noDefault.details);
    assert.ok(
      noDefault.details.includes(invalid) && /defaultAction/.test(noDefault.details),
      noDefault.details,
    );

    const { containers } = await cri.runtime.ListContainers({ filter: { pod_sandbox_id: pod.id } });
    assert.deepEqual(containers, [], 'no container left behind');
  });

  it('the deprecated seccomp_profile_path works too', async () => {
    const file = join(setup.dirs.base, 'deny-unshare.json');
    await writeFile(
      file,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['unshare'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
      }),
    );
    const pod = await runPod();
    const def = await run(pod, 'path-default', { seccomp_profile_path: 'runtime/default' });
    const docker = await run(pod, 'path-docker', { seccomp_profile_path: 'docker/default' });
    const unconfined = await run(pod, 'path-unconfined', { seccomp_profile_path: 'unconfined' });
    const local = await run(pod, 'path-local', { seccomp_profile_path: `localhost/${file}` });
    assert.equal(await seccompMode(def), '2');
    assert.equal(await seccompMode(docker), '2');
    assert.equal(await seccompMode(unconfined), '0');
    assert.equal(await seccompMode(local), '2');
    assert.equal(await permitted(def, 'unshare -U true'), false);
    assert.equal(await permitted(local, 'unshare -U true'), false);
    assert.equal(await permitted(unconfined, 'unshare -U true'), true);

    const missing = await createFails(pod, { seccomp_profile_path: '/tmp/nothing-here.json' });
    assert.equal(missing.code, GrpcCode.INVALID_ARGUMENT, missing.details);
    assert.match(missing.details, /seccomp_profile_path/);
    const gone = join(setup.dirs.base, 'gone.json');
    const missingFile = await createFails(pod, { seccomp_profile_path: `localhost/${gone}` });
    assert.equal(missingFile.code, GrpcCode.INVALID_ARGUMENT, missingFile.details);
    assert.ok(missingFile.details.includes(gone) && missingFile.details.includes('seccomp_profile_path'));
  });
});
