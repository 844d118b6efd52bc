/**
 * Pods and containers on real runc and conmon: the busybox image from a real registry, the
 * built-in pause image, the whole lifecycle through the CRI, exit codes and reasons, stop
 * escalation, logs, ExecSync, bad input, and nothing left behind after removal.
 */
import assert from 'node:assert/strict';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { runCommand } from '../../src/util/command.js';
import { rejection, type CriClients } from './harness/cri-client.js';
import type { RunningCrisp, TestDirs } from './harness/daemon.js';
import { mountsUnder, processesMentioning, until } from './harness/host.js';
import type { TestRegistry } from './harness/registry.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

describe('pods and containers on runc and conmon', () => {
  let setup: BusyboxSetup;
  let registry: TestRegistry;
  let crisp: RunningCrisp;
  let dirs: TestDirs;
  let cri: CriClients;
  let image: string;
  let logDir: string;
  let podCount = 0;

  const podConfig = (name = `pod${++podCount}`) => ({
    metadata: { name, namespace: 'e2e', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: join(logDir, name),
    labels: { app: name },
    annotations: { 'e2e/pod': name },
  });

  // kubelet's shape: namespace options always set, the container in a PID namespace of its own
  // (unset, they are the proto's zero values and the container shares the pod's).
  const containerConfig = (name: string, command: string[], extra: Record<string, unknown> = {}) => ({
    metadata: { name, attempt: 0 },
    image: { image },
    command,
    log_path: `${name}.log`,
    labels: { ctr: name },
    linux: {
      security_context: {
        namespace_options: { network: 'POD' as const, pid: 'CONTAINER' as const, ipc: 'POD' as const },
      },
    },
    ...extra,
  });

  async function runPod(name?: string) {
    const config = podConfig(name);
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    return { id: pod_sandbox_id, config };
  }

  async function runContainer(pod: Awaited<ReturnType<typeof runPod>>, name: string, command: string[]) {
    const { container_id } = await cri.runtime.CreateContainer(
      { pod_sandbox_id: pod.id, config: containerConfig(name, command), sandbox_config: pod.config },
      60_000,
    );
    await cri.runtime.StartContainer({ container_id }, 60_000);
    return container_id;
  }

  const status = async (id: string) => (await cri.runtime.ContainerStatus({ container_id: id })).status;
  const exited = (id: string) =>
    until(`container ${id} to exit`, async () => {
      const s = await status(id);
      return s?.state === 'CONTAINER_EXITED' ? s : undefined;
    });

  before(async () => {
    setup = await startWithBusybox();
    ({ registry, crisp, dirs, cri, image } = setup);
    logDir = join(dirs.base, 'logs');
  });

  after(async () => {
    await setup.teardown();
  });

  it('runs a pod: READY, listed, with its namespaces and files', async () => {
    const pod = await runPod();
    const res = await cri.runtime.PodSandboxStatus({ pod_sandbox_id: pod.id, verbose: true });
    const st = res.status;
    assert.ok(st);
    assert.equal(st.state, 'SANDBOX_READY');
    assert.equal(st.metadata?.name, pod.config.metadata.name);
    assert.deepEqual(st.labels, pod.config.labels);
    assert.ok(BigInt(st.created_at) > 0n);
    const info = JSON.parse(res.info.info ?? '{}') as { netnsPath: string; infraContainer: { pid: number } };
    assert.ok((await stat(info.netnsPath)).isFile(), 'pinned netns');
    assert.ok(info.infraContainer.pid > 0, 'infra container runs');
    const list = await cri.runtime.ListPodSandbox({
      filter: { label_selector: { app: pod.config.metadata.name } },
    });
    assert.deepEqual(
      list.items.map((p) => p.id),
      [pod.id],
    );
    const none = await cri.runtime.ListContainers({ filter: { pod_sandbox_id: pod.id } });
    assert.equal(none.containers.length, 0, 'the infra container is not listed');
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: pod.id });
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id });
  });

  it('runs a container: created, running, logs in CRI format, exec, stop escalation, remove', async () => {
    const pod = await runPod();
    const { container_id: id } = await cri.runtime.CreateContainer(
      {
        pod_sandbox_id: pod.id,
        config: containerConfig('app', ['sh', '-c', 'echo hello; echo oops >&2; exec sleep 1000']),
        sandbox_config: pod.config,
      },
      60_000,
    );
    assert.equal((await status(id))?.state, 'CONTAINER_CREATED');
    await cri.runtime.StartContainer({ container_id: id });
    const running = await status(id);
    assert.ok(running);
    assert.equal(running.state, 'CONTAINER_RUNNING');
    assert.ok(BigInt(running.started_at) > 0n);
    const logPath = join(pod.config.log_directory, 'app.log');
    assert.equal(running.log_path, logPath);
    assert.equal(running.image_ref.startsWith('sha256:'), true);
    const linuxUser = running.user?.linux;
    assert.ok(linuxUser, 'ContainerStatus.user reports the effective ids');
    assert.equal(linuxUser.uid, '0');
    assert.equal(linuxUser.gid, '0');

    const log = await until('log lines', async () => {
      const text = await readFile(logPath, 'utf8').catch(() => '');
      return text.includes('oops') && text.includes('hello') ? text : undefined;
    });
    assert.match(log, /^\S+ stdout F hello$/m);
    assert.match(log, /^\S+ stderr F oops$/m);

    const exec = await cri.runtime.ExecSync({
      container_id: id,
      cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'],
      timeout: '10',
    });
    assert.equal(exec.stdout.toString(), 'out\n');
    assert.equal(exec.stderr.toString(), 'err\n');
    assert.equal(exec.exit_code, 3);

    const again = await rejection(cri.runtime.StartContainer({ container_id: id }));
    assert.equal(again.code, GrpcCode.FAILED_PRECONDITION);
    assert.match(again.details, /is running/);

    // sleep ignores nothing, but as PID 1 without a handler SIGTERM does nothing: SIGKILL follows.
    const t0 = Date.now();
    await cri.runtime.StopContainer({ container_id: id, timeout: '1' }, 30_000);
    assert.ok(Date.now() - t0 >= 900, 'waited for the grace period');
    const stopped = await status(id);
    assert.ok(stopped);
    assert.equal(stopped.state, 'CONTAINER_EXITED');
    assert.equal(stopped.exit_code, 137);
    assert.equal(stopped.reason, 'Error');
    await cri.runtime.StopContainer({ container_id: id, timeout: '1' }); // idempotent

    await cri.runtime.RemoveContainer({ container_id: id });
    const gone = await rejection(cri.runtime.ContainerStatus({ container_id: id }));
    assert.equal(gone.code, GrpcCode.NOT_FOUND);
    await cri.runtime.RemoveContainer({ container_id: id }); // idempotent
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id });
  });

  it('records exit codes and reasons of containers that end by themselves', async () => {
    const pod = await runPod();
    const ok = await runContainer(pod, 'ok', ['true']);
    const bad = await runContainer(pod, 'bad', ['sh', '-c', 'exit 3']);
    const okStatus = await exited(ok);
    assert.equal(okStatus.exit_code, 0);
    assert.equal(okStatus.reason, 'Completed');
    const badStatus = await exited(bad);
    assert.equal(badStatus.exit_code, 3);
    assert.equal(badStatus.reason, 'Error');
    assert.ok(BigInt(badStatus.finished_at) >= BigInt(badStatus.started_at));
    const listed = await cri.runtime.ListContainers({
      filter: { pod_sandbox_id: pod.id, state: { state: 'CONTAINER_EXITED' } },
    });
    assert.deepEqual(listed.containers.map((c) => c.id).sort(), [ok, bad].sort());
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id });
  });

  it('refuses bad input with the right code, naming the object, leaving nothing behind', async () => {
    const pod = await runPod();
    const create = (config: Record<string, unknown>, sandboxId = pod.id) =>
      rejection(
        cri.runtime.CreateContainer({ pod_sandbox_id: sandboxId, config, sandbox_config: pod.config }),
      );

    const noImage = await create(
      containerConfig('x', ['true'], { image: { image: `${registry.host}/never/pulled:1` } }),
    );
    assert.equal(noImage.code, GrpcCode.NOT_FOUND, noImage.details);
    assert.match(noImage.details, /never\/pulled:1.*pull it/);

    const escape = await create({ ...containerConfig('x', ['true']), log_path: '../../etc/evil.log' });
    assert.equal(escape.code, GrpcCode.INVALID_ARGUMENT, escape.details);
    assert.match(escape.details, /log_path/);

    // A missing source is made (as containerd and CRI-O make it); one under a file is refused.
    await writeFile(join(dirs.base, 'a-file'), 'not a directory\n');
    const noSource = await create({
      ...containerConfig('x', ['true']),
      mounts: [{ container_path: '/data', host_path: join(dirs.base, 'a-file', 'no-such-dir') }],
    });
    assert.equal(noSource.code, GrpcCode.INVALID_ARGUMENT, noSource.details);
    assert.match(noSource.details, /no-such-dir" cannot be used \(ENOTDIR\)/);

    const unknownPod = await create(containerConfig('x', ['true']), 'f'.repeat(64));
    assert.equal(unknownPod.code, GrpcCode.NOT_FOUND, unknownPod.details);
    assert.match(unknownPod.details, /pod sandbox/);

    const first = await runContainer(pod, 'dup', ['sleep', '100']);
    const dup = await create(containerConfig('dup', ['true']));
    assert.equal(dup.code, GrpcCode.ALREADY_EXISTS, dup.details);

    const noMeta = await rejection(cri.runtime.RunPodSandbox({ config: { hostname: 'x' } }));
    assert.equal(noMeta.code, GrpcCode.INVALID_ARGUMENT);
    assert.match(noMeta.details, /config\.metadata: required/);

    const unknownCtr = await rejection(cri.runtime.ContainerStatus({ container_id: 'f'.repeat(64) }));
    assert.equal(unknownCtr.code, GrpcCode.NOT_FOUND);
    const unknownPodStatus = await rejection(
      cri.runtime.PodSandboxStatus({ pod_sandbox_id: 'f'.repeat(64) }),
    );
    assert.equal(unknownPodStatus.code, GrpcCode.NOT_FOUND);

    // Only the one good container exists in the pod.
    const listed = await cri.runtime.ListContainers({ filter: { pod_sandbox_id: pod.id } });
    assert.deepEqual(
      listed.containers.map((c) => c.id),
      [first],
    );
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: pod.id });
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id });
  });

  it('stops and removes a pod with running containers, leaving no mount, netns or process', async () => {
    const pod = await runPod();
    const a = await runContainer(pod, 'a', ['sleep', '1000']);
    const b = await runContainer(pod, 'b', ['sleep', '1000']);
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: pod.id }, 60_000);
    const res = await cri.runtime.PodSandboxStatus({ pod_sandbox_id: pod.id });
    assert.equal(res.status?.state, 'SANDBOX_NOTREADY');
    for (const id of [a, b]) assert.equal((await status(id))?.state, 'CONTAINER_EXITED');
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: pod.id }); // idempotent
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }); // idempotent
    const gone = await rejection(cri.runtime.PodSandboxStatus({ pod_sandbox_id: pod.id }));
    assert.equal(gone.code, GrpcCode.NOT_FOUND);

    const netnsDir = join(dirs.run, 'netns');
    const left = (await mountsUnder(dirs.base)).filter((m) => m !== netnsDir);
    assert.deepEqual(
      left,
      [],
      `no mounts left under the test dirs (but the netns dir itself): ${left.join(', ')}`,
    );
    assert.deepEqual(await readdir(join(dirs.run, 'netns')), [], 'no netns left');
    for (const id of [a, b, pod.id]) {
      assert.deepEqual(await processesMentioning(id), [], `no process for ${id}`);
    }
  });

  it('reports a command missing from the image as an EXITED container with the reason', async () => {
    const pod = await runPod();
    const { container_id: id } = await cri.runtime.CreateContainer(
      {
        pod_sandbox_id: pod.id,
        config: containerConfig('missing', ['/no/such/binary']),
        sandbox_config: pod.config,
      },
      60_000,
    );
    const s1 = await status(id);
    assert.ok(s1);
    assert.equal(s1.state, 'CONTAINER_EXITED');
    assert.equal(s1.reason, 'StartError');
    assert.equal(s1.exit_code, 128);
    assert.match(s1.message, /\/no\/such\/binary/);
    const start = await rejection(cri.runtime.StartContainer({ container_id: id }, 60_000));
    assert.match(start.details, /\/no\/such\/binary/);
    assert.equal((await status(id))?.state, 'CONTAINER_EXITED');
    await cri.runtime.RemoveContainer({ container_id: id });
    const left = (await mountsUnder(dirs.base)).filter((m) => m.includes(id));
    assert.deepEqual(left, [], 'no rootfs of that container left mounted');
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
  });

  it('gives containers the pod hostname, resolv.conf from dns_config, hosts and a shared /dev/shm', async () => {
    const config = {
      ...podConfig('dnspod'),
      dns_config: {
        servers: ['10.85.0.10'],
        searches: ['e2e.svc.cluster.local', 'svc.cluster.local'],
        options: ['ndots:5'],
      },
    };
    const { pod_sandbox_id: podId } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    const pod = { id: podId, config };
    const a = await runContainer(pod, 'a', ['sleep', '1000']);
    const b = await runContainer(pod, 'b', ['sleep', '1000']);
    const exec = async (id: string, script: string): Promise<string> => {
      const res = await cri.runtime.ExecSync({ container_id: id, cmd: ['sh', '-c', script], timeout: '10' });
      assert.equal(res.exit_code, 0, res.stderr.toString());
      return res.stdout.toString();
    };
    assert.equal(await exec(a, 'hostname'), 'dnspod\n');
    assert.equal(await exec(a, 'cat /etc/hostname'), 'dnspod\n');
    const resolv = await exec(a, 'cat /etc/resolv.conf');
    assert.match(resolv, /^nameserver 10\.85\.0\.10$/m);
    assert.match(resolv, /^search e2e\.svc\.cluster\.local svc\.cluster\.local$/m);
    assert.match(resolv, /^options ndots:5$/m);
    assert.match(await exec(a, 'cat /etc/hosts'), /dnspod/);
    await exec(a, 'echo shared > /dev/shm/x');
    assert.equal(await exec(b, 'cat /dev/shm/x'), 'shared\n', 'containers of a pod share /dev/shm (IPC)');
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: podId }, 60_000);
  });

  it('stops a container whose cgroup was frozen behind its back (thaw, then kill)', async () => {
    const pod = await runPod();
    const id = await runContainer(pod, 'frozen', ['sleep', '1000']);
    await runCommand('runc', ['--root', join(dirs.run, 'runc'), 'pause', id]);
    const t0 = Date.now();
    await cri.runtime.StopContainer({ container_id: id, timeout: '1' }, 30_000);
    assert.ok(Date.now() - t0 < 10_000, 'the stop did not wait for the frozen process');
    const s = await status(id);
    assert.ok(s);
    assert.equal(s.state, 'CONTAINER_EXITED');
    assert.equal(s.exit_code, 137);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
  });

  it('refuses an unknown runtime handler and a target container from another pod', async () => {
    const bad = await rejection(cri.runtime.RunPodSandbox({ config: podConfig(), runtime_handler: 'nope' }));
    assert.equal(bad.code, GrpcCode.INVALID_ARGUMENT, bad.details);
    assert.match(bad.details, /runtime handler "nope"/);
    assert.equal(
      (await cri.runtime.ListPodSandbox({})).items.filter((p) => p.runtime_handler === 'nope').length,
      0,
      'nothing half-made',
    );

    const podA = await runPod();
    const podB = await runPod();
    const inA = await runContainer(podA, 'target', ['sleep', '1000']);
    const cross = await rejection(
      cri.runtime.CreateContainer({
        pod_sandbox_id: podB.id,
        config: {
          ...containerConfig('debug', ['sleep', '1000']),
          linux: { security_context: { namespace_options: { pid: 'TARGET', target_id: inA } } },
        },
        sandbox_config: podB.config,
      }),
    );
    assert.equal(cross.code, GrpcCode.FAILED_PRECONDITION, cross.details);
    assert.ok(cross.details.includes(inA), cross.details);
    assert.equal(
      (await cri.runtime.ListContainers({ filter: { pod_sandbox_id: podB.id } })).containers.length,
      0,
    );
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: podA.id }, 60_000);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: podB.id }, 60_000);
  });

  it('stops with the stop signal the request names', async () => {
    const pod = await runPod();
    const { container_id: id } = await cri.runtime.CreateContainer(
      {
        pod_sandbox_id: pod.id,
        config: {
          ...containerConfig('usr1', [
            'sh',
            '-c',
            'trap "exit 0" USR1; trap "exit 7" TERM; while true; do sleep 0.1; done',
          ]),
          stop_signal: 'SIGUSR1',
        },
        sandbox_config: pod.config,
      },
      60_000,
    );
    await cri.runtime.StartContainer({ container_id: id });
    assert.equal((await status(id))?.stop_signal, 'SIGUSR1');
    await cri.runtime.StopContainer({ container_id: id, timeout: '10' }, 30_000);
    const s = await status(id);
    assert.ok(s);
    assert.equal(s.exit_code, 0, 'SIGUSR1, not SIGTERM, was sent');
    assert.equal(s.reason, 'Completed');
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
  });

  it('lets a retried RunPodSandbox or CreateContainer join the call still under way', async () => {
    const config = podConfig();
    const [a, b] = await Promise.all([
      cri.runtime.RunPodSandbox({ config }, 60_000),
      cri.runtime.RunPodSandbox({ config }, 60_000),
    ]);
    assert.equal(a.pod_sandbox_id, b.pod_sandbox_id, 'one pod for both calls');
    const pods = await cri.runtime.ListPodSandbox({
      filter: { label_selector: { app: config.metadata.name } },
    });
    assert.equal(pods.items.length, 1);

    const ctr = containerConfig('twice', ['sleep', '1000']);
    const req = { pod_sandbox_id: a.pod_sandbox_id, config: ctr, sandbox_config: config };
    const [c1, c2] = await Promise.all([
      cri.runtime.CreateContainer(req, 60_000),
      cri.runtime.CreateContainer(req, 60_000),
    ]);
    assert.equal(c1.container_id, c2.container_id, 'one container for both calls');
    const listed = await cri.runtime.ListContainers({ filter: { pod_sandbox_id: a.pod_sandbox_id } });
    assert.equal(listed.containers.length, 1);

    // Once the first call has answered, the same metadata again is a genuine duplicate.
    const dup = await rejection(cri.runtime.CreateContainer(req));
    assert.equal(dup.code, GrpcCode.ALREADY_EXISTS);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: a.pod_sandbox_id }, 60_000);
  });

  it('reports pod start stages, stop escalations and object counts in metrics and /debug/state', async () => {
    const pod = await runPod();
    const m = await runContainer(pod, 'm', ['sleep', '1000']);
    await runContainer(pod, 'n', ['sleep', '1000']);
    await cri.runtime.StopContainer({ container_id: m, timeout: '0' }, 30_000);
    const text = await (await fetch(`${crisp.metricsUrl}/metrics`)).text();
    const stages: [string, string][] = [
      ['netns', 'pod'],
      ['cni', 'pod'],
      ['pod_files', 'pod'],
      ['rootfs', 'infra'],
      ['runtime_create', 'infra'],
      ['runtime_start', 'infra'],
      ['rootfs', 'app'],
      ['spec', 'app'],
      ['runtime_create', 'app'],
      ['runtime_start', 'app'],
    ];
    for (const [stage, kind] of stages) {
      const m = new RegExp(
        `^crisp_pod_start_stage_duration_seconds_count\\{stage="${stage}",kind="${kind}"\\} (\\d+)$`,
        'm',
      ).exec(text);
      assert.ok(m?.[1] && Number(m[1]) > 0, `stage ${stage} of ${kind} measured`);
    }
    assert.match(text, /^crisp_container_stop_escalations_total\{step="kill"\} [1-9]\d*$/m);
    assert.match(text, /^crisp_containers\{state="running"\} 2$/m); // n and the infra container
    assert.match(text, /^crisp_containers\{state="exited"\} 1$/m); // m
    assert.match(text, /^crisp_pods\{state="ready"\} 1$/m);
    const state = (await (await fetch(`${crisp.metricsUrl}/debug/state`)).json()) as {
      pods: { id: string; ready: boolean }[];
      containers: { pod: string; kind: string; state: string }[];
    };
    assert.deepEqual(
      state.pods.map((p) => [p.id, p.ready]),
      [[pod.id, true]],
    );
    assert.deepEqual(
      state.containers
        .filter((c) => c.pod === pod.id)
        .map((c) => [c.kind, c.state])
        .sort(),
      [
        ['app', 'exited'],
        ['app', 'running'],
        ['infra', 'running'],
      ],
    );
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
  });
});
