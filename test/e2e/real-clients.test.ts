/**
 * The request shapes real clients send, against the real daemon: critest v1.26.1 (no hostname,
 * pod names past 64 characters, an empty sandbox_config on PullImage, containers without a
 * security context, ExecSync timeouts, port-forward into a host-network pod), crictl's
 * hand-written configs, and kubelet's evented PLEG reading PodSandboxStatus. Each was refused or
 * mishandled once; docs/limits.md says what crisp accepts and why the rest is refused.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { access, mkdir, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { createAndStart, execSh, rejection, type CriClients } from './harness/cri-client.js';
import { processesMentioning, until } from './harness/host.js';
import { isRefusal, spdyExec, spdyForwardOnce, spdyUpgrade } from './harness/stream-client.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

/** A TCP port nothing listens on right now (the kernel's pick), for a host-network server. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe('what critest, crictl and kubelet send', { timeout: 300_000 }, () => {
  let setup: BusyboxSetup;
  let cri: CriClients;

  /** A pod the way critest's framework makes one: no hostname, no log directory, a long name. */
  const critestPod = (prefix: string, extra: Record<string, unknown> = {}): Record<string, unknown> => {
    const uuid = randomUUID();
    return {
      metadata: {
        name: `${prefix}${uuid}`,
        namespace: `cri-test-namespace${uuid}`,
        uid: `cri-test-uid${uuid}`,
        attempt: 0,
      },
      linux: {},
      ...extra,
    };
  };

  const runPod = async (config: Record<string, unknown>): Promise<string> =>
    (await cri.runtime.RunPodSandbox({ config }, 60_000)).pod_sandbox_id;

  /** A running critest-shaped pod: its id and the config it was made with. */
  const startPod = async (
    prefix: string,
    extra: Record<string, unknown> = {},
  ): Promise<{ id: string; config: Record<string, unknown> }> => {
    const config = critestPod(prefix, extra);
    return { id: await runPod(config), config };
  };

  /** A container as critest's CreateDefaultContainer makes it: `Linux: {}`, no security context. */
  const critestContainer = (image: string, name: string, command: string[]): Record<string, unknown> => ({
    metadata: { name: `${name}${randomUUID()}`, attempt: 0 },
    image: { image },
    command,
    linux: {},
  });

  before(async () => {
    setup = await startWithBusybox();
    cri = setup.cri;
  });

  after(async () => {
    await setup.teardown();
  });

  it('RunPodSandbox with no hostname and a 70-character name: CRI-O’s host name, the id’s first 12 digits', async () => {
    const pod = await startPod('create-PodSandbox-for-container-x-');
    const name = (pod.config.metadata as { name: string }).name;
    assert.equal(name.length, 70);
    const ctr = await createAndStart(cri, pod, critestContainer(setup.image, 'c-', ['sleep', '1000']));
    assert.equal((await execSh(cri, ctr, 'hostname', { trim: true })).out, pod.id.slice(0, 12));
    assert.equal((await execSh(cri, ctr, 'cat /etc/hostname', { trim: true })).out, pod.id.slice(0, 12));
    const status = await cri.runtime.PodSandboxStatus({ pod_sandbox_id: pod.id });
    assert.equal(status.status?.state, 'SANDBOX_READY');
    assert.equal(status.status.metadata?.name, name);
  });

  it('a host-network pod with no hostname gets the node’s host name', async () => {
    const pod = await startPod('host-net-', {
      linux: { security_context: { namespace_options: { network: 'NODE', pid: 'POD', ipc: 'POD' } } },
    });
    const ctr = await createAndStart(cri, pod, critestContainer(setup.image, 'c-', ['sleep', '1000']));
    assert.equal((await execSh(cri, ctr, 'hostname', { trim: true })).out, osHostname());
    assert.equal((await execSh(cri, ctr, 'cat /etc/hostname', { trim: true })).out, osHostname());
  });

  it('a host name the kernel cannot take (65 bytes) is refused by name, and nothing is made', async () => {
    const before = (await cri.runtime.ListPodSandbox({})).items.length;
    const err = await rejection(runPod(critestPod('long-host-', { hostname: 'h'.repeat(65) })));
    assert.equal(err.code, GrpcCode.INVALID_ARGUMENT);
    assert.match(err.details, /config\.hostname.*at most 64 bytes/);
    assert.equal((await cri.runtime.ListPodSandbox({})).items.length, before);
  });

  it('PullImage with a sandbox_config that has no metadata (critest’s image tests)', async () => {
    const res = await cri.image.PullImage(
      { image: { image: setup.image }, sandbox_config: { labels: { 'critest-label': 'x' } } },
      60_000,
    );
    assert.match(res.image_ref, /^sha256:[0-9a-f]{64}$/);
  });

  it('ExecSync past its timeout: the command and its children are gone, seen from inside, when the answer comes', async () => {
    const pod = await startPod('exec-timeout-');
    // critest's container (no security context: the pod's PID namespace) and kubelet's (its own);
    // neither runs a sleep of its own, so any sleep pgrep finds was left by the exec.
    const idle = ['tail', '-f', '/dev/null'];
    const shared = await createAndStart(cri, pod, critestContainer(setup.image, 'shared-', idle));
    const own = await createAndStart(cri, pod, {
      ...critestContainer(setup.image, 'own-', idle),
      linux: { security_context: { namespace_options: { pid: 'CONTAINER', network: 'POD', ipc: 'POD' } } },
    });
    for (const [i, id] of [shared, own].entries()) {
      const tag = `${4321 + i}`;
      const res = await cri.runtime.ExecSync(
        {
          container_id: id,
          cmd: ['sh', '-c', `sleep ${tag}1 & setsid sleep ${tag}2 & exec sleep ${tag}3`],
          timeout: '1',
        },
        30_000,
      );
      assert.equal(res.exit_code, -1, 'a timed-out exec reports -1 (CRI-O’s convention)');
      assert.match(res.stderr.toString(), /timed out after 1 s/);
      // critest's check, word for word: pgrep in the container finds no sleep (a zombie counts).
      assert.equal((await execSh(cri, id, 'pgrep sleep || true', { trim: true })).out, '');
      for (const n of [1, 2, 3]) assert.deepEqual(await processesMentioning(`sleep ${tag}${n}`), []);
    }
  });

  it('ExecSync cancelled by the client’s own deadline: the command goes too', async () => {
    const pod = await startPod('exec-cancel-');
    const id = await createAndStart(
      cri,
      pod,
      critestContainer(setup.image, 'c-', ['tail', '-f', '/dev/null']),
    );
    const err = await rejection(
      cri.runtime.ExecSync(
        { container_id: id, cmd: ['sh', '-c', 'setsid sleep 43331 & exec sleep 43332'], timeout: '60' },
        1_500,
      ),
    );
    assert.equal(err.code, GrpcCode.DEADLINE_EXCEEDED);
    await until('the cancelled exec to be gone', async () =>
      (await processesMentioning('sleep 4333')).length === 0 ? true : undefined,
    );
    assert.equal((await execSh(cri, id, 'pgrep sleep || true', { trim: true })).out, '');
  });

  it('port-forward into a host-network pod reaches a server on the node’s loopback', async () => {
    const port = await freePort();
    const pod = await startPod('create-PodSandbox-with-port-mapping', {
      port_mappings: [{ container_port: port }],
      linux: { security_context: { namespace_options: { network: 'NODE', pid: 'POD', ipc: 'POD' } } },
    });
    await createAndStart(
      cri,
      pod,
      critestContainer(setup.image, 'web-', [
        'sh',
        '-c',
        `mkdir -p /www && echo hello-host-net > /www/index.html && exec httpd -f -p 127.0.0.1:${port} -h /www`,
      ]),
    );
    await until('the web server to listen', async () => {
      const { connect } = await import('node:net');
      return new Promise<true | undefined>((resolve) => {
        const s = connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => {
          resolve(undefined);
        });
      });
    });
    // critest's request: no ports in PortForward; the SPDY streams name the port.
    const { url } = await cri.runtime.PortForward({ pod_sandbox_id: pod.id, port: [] });
    const up = await spdyUpgrade(url, ['portforward.k8s.io']);
    assert.ok(!isRefusal(up));
    const r = await spdyForwardOnce(up.session, port, 0, Buffer.from('GET /index.html HTTP/1.0\r\n\r\n'));
    up.session.destroy();
    assert.equal(r.error, '');
    assert.match(r.data.toString(), /^HTTP\/1\.[01] 200/);
    assert.match(r.data.toString(), /hello-host-net/);
  });

  it('PodSandboxStatus carries its containers’ statuses with the timestamp (kubelet’s evented PLEG)', async () => {
    const pod = await startPod('status-');
    const running = await createAndStart(cri, pod, critestContainer(setup.image, 'run-', ['sleep', '1000']));
    const done = await createAndStart(
      cri,
      pod,
      critestContainer(setup.image, 'done-', ['sh', '-c', 'exit 3']),
    );
    await until('the short one to exit', async () =>
      (await cri.runtime.ContainerStatus({ container_id: done })).status?.state === 'CONTAINER_EXITED'
        ? true
        : undefined,
    );
    const before = BigInt(Date.now()) * 1_000_000n;
    const res = await cri.runtime.PodSandboxStatus({ pod_sandbox_id: pod.id });
    assert.ok(BigInt(res.timestamp) >= before, 'the timestamp is when the statuses were read');
    const byId = new Map(res.containers_statuses.map((s) => [s.id, s]));
    assert.deepEqual([...byId.keys()].sort(), [running, done].sort());
    assert.equal(byId.get(running)?.state, 'CONTAINER_RUNNING');
    assert.equal(byId.get(done)?.state, 'CONTAINER_EXITED');
    assert.equal(byId.get(done)?.exit_code, 3);
    // Each is what ContainerStatus says of it.
    const single = await cri.runtime.ContainerStatus({ container_id: done });
    assert.deepEqual(byId.get(done), single.status);
    await cri.runtime.RemoveContainer({ container_id: done });
    const after = await cri.runtime.PodSandboxStatus({ pod_sandbox_id: pod.id });
    assert.deepEqual(
      after.containers_statuses.map((s) => s.id),
      [running],
    );
  });

  it('a container without a security context shares the pod’s PID namespace (the proto’s zero value)', async () => {
    const pod = await startPod('pidns-');
    const shared = await createAndStart(
      cri,
      pod,
      critestContainer(setup.image, 'shared-', ['sleep', '1000']),
    );
    const own = await createAndStart(cri, pod, {
      ...critestContainer(setup.image, 'own-', ['sleep', '1000']),
      linux: { security_context: { namespace_options: { pid: 'CONTAINER', network: 'POD', ipc: 'POD' } } },
    });
    // pid 1 is the pod's pause process for the first, the container's own command for the second.
    assert.doesNotMatch((await execSh(cri, shared, 'cat /proc/1/cmdline', { trim: true })).out, /^sleep/);
    assert.match((await execSh(cri, own, 'cat /proc/1/cmdline', { trim: true })).out, /^sleep/);
  });

  it('a hostPath that does not exist is made as a directory, mode 0755 (kubelet’s hostPath volume of no type)', async () => {
    const pod = await startPod('hostpath-');
    const dir = join(setup.dirs.base, 'made', 'by', 'crisp');
    assert.equal(await exists(dir), false);
    const id = await createAndStart(cri, pod, {
      ...critestContainer(setup.image, 'c-', ['sh', '-c', 'echo written > /data/file; sleep 1000']),
      mounts: [{ container_path: '/data', host_path: dir }],
    });
    await until('the file the container writes', async () =>
      (await exists(join(dir, 'file'))) ? true : undefined,
    );
    assert.equal(await readFile(join(dir, 'file'), 'utf8'), 'written\n');
    assert.equal((await stat(dir)).mode & 0o777, 0o755);
    assert.ok((await stat(dir)).isDirectory());
    await cri.runtime.RemoveContainer({ container_id: id });
  });

  it('attach with stdin to a container made without stdin: the output comes, the input is dropped', async () => {
    const pod = await startPod('attach-');
    const id = await createAndStart(
      cri,
      pod,
      critestContainer(setup.image, 'ticker-', [
        'sh',
        '-c',
        'i=0; while [ $i -lt 40 ]; do echo tick; sleep 0.1; i=$((i+1)); done',
      ]),
    );
    const { url } = await cri.runtime.Attach({
      container_id: id,
      stdin: true,
      stdout: true,
      stderr: true,
      tty: false,
    });
    const r = await spdyExec(url, { stdin: Buffer.from('dropped\n') });
    assert.match(r.stdout.toString(), /tick/);
    assert.doesNotMatch(r.stdout.toString(), /dropped/);
  });

  it('crictl’s hand-written configs: "_" in names, no namespace or uid, log_path without a log_directory', async () => {
    const a = { metadata: { name: 'a_b', namespace: 'c', uid: '', attempt: 0 }, linux: {} };
    const b = { metadata: { name: 'a', namespace: 'b_c', uid: '', attempt: 0 }, linux: {} };
    // Joined with "_", these two would claim the same name; crisp keeps them apart.
    const podA = await runPod(a);
    const podB = await runPod(b);
    assert.notEqual(podA, podB);
    const again = await rejection(runPod(a));
    assert.equal(again.code, GrpcCode.ALREADY_EXISTS);
    // No log_directory: containerd runs the container with no log file; so does crisp.
    const id = await createAndStart(
      cri,
      { id: podA, config: a },
      {
        ...critestContainer(setup.image, 'logless_', ['sh', '-c', 'echo hi; sleep 1000']),
        log_path: 'logless.log',
      },
    );
    const s = await cri.runtime.ContainerStatus({ container_id: id });
    assert.equal(s.status?.state, 'CONTAINER_RUNNING');
    assert.equal(s.status.log_path, '');
    // A pod name holding what CNI_ARGS cannot carry is refused by name.
    const err = await rejection(
      runPod({ metadata: { name: 'x;IP=10.85.0.9', namespace: '', uid: '', attempt: 0 } }),
    );
    assert.equal(err.code, GrpcCode.INVALID_ARGUMENT);
    assert.match(err.details, /config\.metadata\.name.*CNI_ARGS/);
  });

  it('an absolute or roundabout log_path lands in the log directory; one that leaves it is refused', async () => {
    const logDir = join(setup.dirs.base, 'pod-logs-paths');
    await mkdir(logDir, { recursive: true });
    const pod = await startPod('logs-', { log_directory: logDir });
    // Joined as containerd and CRI-O join it: "/abs.log" is <dir>/abs.log.
    for (const [logPath, file] of [
      ['/abs.log', 'abs.log'],
      ['x/../round.log', 'round.log'],
    ] as const) {
      const id = await createAndStart(cri, pod, {
        ...critestContainer(setup.image, 'log-', ['sh', '-c', 'echo logged; sleep 1000']),
        log_path: logPath,
      });
      const status = (await cri.runtime.ContainerStatus({ container_id: id })).status;
      assert.equal(status?.log_path, join(logDir, file));
      await until(`the log at ${file}`, async () =>
        (await readFile(join(logDir, file), 'utf8').catch(() => '')).includes('logged') ? true : undefined,
      );
    }
    const before = (await cri.runtime.ListContainers({})).containers.length;
    const err = await rejection(
      cri.runtime.CreateContainer({
        pod_sandbox_id: pod.id,
        config: { ...critestContainer(setup.image, 'out-', ['true']), log_path: '../../escape.log' },
      }),
    );
    assert.equal(err.code, GrpcCode.INVALID_ARGUMENT);
    assert.match(err.details, /config\.log_path/);
    assert.equal((await cri.runtime.ListContainers({})).containers.length, before);
    assert.equal(await exists(join(setup.dirs.base, 'escape.log')), false);
  });

  it('negative timeouts read as the anchors read them: StopContainer -1 kills at once, ExecSync -1 has none', async () => {
    const pod = await startPod('timeouts-');
    // The shell ignores SIGTERM: only a SIGKILL stops it.
    const id = await createAndStart(
      cri,
      pod,
      critestContainer(setup.image, 'c-', ['sh', '-c', 'trap "" TERM; while true; do sleep 1; done']),
    );
    const res = await cri.runtime.ExecSync({
      container_id: id,
      cmd: ['sh', '-c', 'sleep 1; echo slept'],
      timeout: '-1',
    });
    assert.equal(res.exit_code, 0);
    assert.equal(res.stdout.toString(), 'slept\n');
    await cri.runtime.StopContainer({ container_id: id, timeout: '-1' }, 30_000);
    const s = (await cri.runtime.ContainerStatus({ container_id: id })).status;
    assert.equal(s?.state, 'CONTAINER_EXITED');
    assert.equal(s.exit_code, 137);
  });

  it('names that are no image and ids that are no crisp id find nothing, as in containerd', async () => {
    const status = await cri.image.ImageStatus({ image: { image: 'Not/A:Reference!' } });
    assert.equal(status.image, null);
    await cri.image.RemoveImage({ image: { image: 'Not/A:Reference!' } });
    const longId = 'f'.repeat(100);
    const notFound = await rejection(cri.runtime.ContainerStatus({ container_id: longId }));
    assert.equal(notFound.code, GrpcCode.NOT_FOUND);
    await cri.runtime.StopContainer({ container_id: longId, timeout: '0' });
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: 'x\u0007y' });
    assert.deepEqual((await cri.runtime.ListContainers({ filter: { id: longId } })).containers, []);
  });

  it('a dropped capability Linux does not have is ignored; an added one is refused by name (CRI-O)', async () => {
    const pod = await startPod('caps-');
    const caps = (add: string[], drop: string[]) => ({
      linux: { security_context: { capabilities: { add_capabilities: add, drop_capabilities: drop } } },
    });
    const ok = await createAndStart(cri, pod, {
      ...critestContainer(setup.image, 'drop-', ['sleep', '1000']),
      ...caps([], ['NOT_A_CAPABILITY', 'NET_RAW']),
    });
    const capEff = await execSh(cri, ok, 'grep CapEff /proc/self/status', { trim: true });
    assert.match(capEff.out, /^CapEff:\s+[0-9a-f]{16}$/);
    // NET_RAW (bit 13) is gone.
    assert.equal((BigInt(`0x${capEff.out.split(/\s+/)[1] ?? '0'}`) >> 13n) & 1n, 0n);
    const err = await rejection(
      cri.runtime.CreateContainer({
        pod_sandbox_id: pod.id,
        config: { ...critestContainer(setup.image, 'add-', ['true']), ...caps(['NOT_A_CAPABILITY'], []) },
      }),
    );
    assert.equal(err.code, GrpcCode.INVALID_ARGUMENT);
    assert.match(err.details, /add_capabilities\[0\]/);
  });

  it('a localhost AppArmor profile that cannot be applied is refused at CreateContainer, nothing made', async () => {
    const enabled =
      (await readFile('/sys/module/apparmor/parameters/enabled', 'utf8').catch(() => 'N')).trim() === 'Y';
    const pod = await startPod('apparmor-');
    const before = (await cri.runtime.ListContainers({})).containers.length;
    const err = await rejection(
      cri.runtime.CreateContainer(
        {
          pod_sandbox_id: pod.id,
          config: {
            ...critestContainer(setup.image, 'aa-', ['true']),
            linux: {
              security_context: { apparmor_profile: `localhost/crisp-e2e-not-loaded-${randomUUID()}` },
            },
          },
        },
        60_000,
      ),
    );
    assert.equal(err.code, GrpcCode.FAILED_PRECONDITION);
    // This node's answer: not loaded (AppArmor on, as critest expects) or not enabled at all.
    assert.match(
      err.details,
      enabled ? /is not loaded on this node/ : /AppArmor is not enabled on this node/,
    );
    assert.equal((await cri.runtime.ListContainers({})).containers.length, before);
  });
});
