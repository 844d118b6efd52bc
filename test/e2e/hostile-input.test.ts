/**
 * Hostile and malformed requests against the real daemon: 10,000 labels, megabyte names, invalid
 * UTF-8 (sent as raw protobuf bytes, which no protobufjs encoder produces), path traversal,
 * NUL bytes, CNI arguments in names, absurd resources, unknown enum values and a message past the
 * size limit (what real clients send is in real-clients.test.ts). Each must be refused with the right code and a message naming the field, and
 * leave nothing behind: no pod, container, directory or mount, and the daemon still answers.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Metadata, status as GrpcCode, type ServiceError } from '@grpc/grpc-js';
import type { ContainerConfig } from '../../src/generated/runtime/v1/ContainerConfig.js';
import type { PodSandboxConfig } from '../../src/generated/runtime/v1/PodSandboxConfig.js';
import { createAndStart, rejection, type CriClients } from './harness/cri-client.js';
import type { RunningCrisp, TestDirs } from './harness/daemon.js';
import { mountsUnder } from './harness/host.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

// --- a minimal protobuf writer, for bytes protobufjs would never encode ---------------------------

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** A length-delimited field (string, bytes or message). */
function field(num: number, payload: Buffer): Buffer {
  return Buffer.concat([varint((num << 3) | 2), varint(payload.length), payload]);
}

/** RunPodSandboxRequest{config{metadata{name, uid, namespace}, hostname}} with raw name bytes. */
function runPodSandboxBytes(name: Buffer): Buffer {
  const metadata = Buffer.concat([
    field(1, name),
    field(2, Buffer.from('uid-raw')),
    field(3, Buffer.from('e2e')),
  ]);
  const config = Buffer.concat([field(1, metadata), field(2, Buffer.from('raw'))]);
  return field(1, config);
}

describe('hostile and malformed input', () => {
  let setup: BusyboxSetup;
  let crisp: RunningCrisp;
  let dirs: TestDirs;
  let cri: CriClients;
  let image: string;
  let pod: { id: string; config: PodSandboxConfig };
  let ctr: string;

  const podConfig = (name: string, extra: Partial<PodSandboxConfig> = {}): PodSandboxConfig => ({
    metadata: { name, namespace: 'e2e', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: join(dirs.base, 'logs', name),
    labels: { app: name },
    ...extra,
  });
  const ctrConfig = (name: string, extra: Partial<ContainerConfig> = {}): ContainerConfig => ({
    metadata: { name, attempt: 0 },
    image: { image },
    command: ['sleep', '1000'],
    log_path: `${name}.log`,
    ...extra,
  });

  /** What the daemon holds and what is on disk: must not change through a refused request. */
  async function snapshot(): Promise<Record<string, unknown>> {
    const ls = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).sort();
    const state = (await (await fetch(`${crisp.metricsUrl}/debug/state`)).json()) as {
      pods: { id: string }[];
      containers: { id: string }[];
      store: unknown;
    };
    return {
      pods: (await cri.runtime.ListPodSandbox({})).items.map((p) => p.id).sort(),
      containers: (await cri.runtime.ListContainers({})).containers.map((c) => c.id).sort(),
      statePods: state.pods.map((p) => p.id).sort(),
      stateContainers: state.containers.map((c) => c.id).sort(),
      store: state.store,
      images: (await cri.image.ListImages({})).images.map((i) => i.id).sort(),
      containerDirs: await ls(join(dirs.root, 'containers')),
      bundles: await ls(join(dirs.run, 'bundles')),
      podDirs: await ls(join(dirs.run, 'pods')),
      netns: await ls(join(dirs.run, 'netns')),
      runc: await ls(join(dirs.run, 'runc')),
      logs: await ls(join(dirs.base, 'logs')),
      mounts: (await mountsUnder(dirs.base)).sort(),
    };
  }

  /** Sends pre-encoded request bytes to a unary RPC. */
  function rawUnary(service: 'RuntimeService' | 'ImageService', method: string, bytes: Buffer) {
    const client = service === 'RuntimeService' ? cri.raw.runtime : cri.raw.image;
    return new Promise<Buffer>((resolve, reject) => {
      client.makeUnaryRequest(
        `/runtime.v1.${service}/${method}`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        bytes,
        new Metadata(),
        { deadline: Date.now() + 30_000 },
        (err: ServiceError | null, res?: Buffer) => {
          if (err) reject(err);
          else resolve(res ?? Buffer.alloc(0));
        },
      );
    });
  }

  before(async () => {
    setup = await startWithBusybox();
    ({ crisp, dirs, cri, image } = setup);
    const config = podConfig('target');
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    pod = { id: pod_sandbox_id, config };
    ctr = await createAndStart(cri, pod, ctrConfig('running'));
  });

  after(async () => {
    await setup.teardown();
  });

  it('refuses each hostile request with the right code, naming the field, and writes nothing', async () => {
    const before_ = await snapshot();
    const tenThousand = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`label-${i}`, 'v']));
    const mib = 'n'.repeat(1024 * 1024);
    const createIn = (config: ContainerConfig) =>
      cri.runtime.CreateContainer({ pod_sandbox_id: pod.id, config, sandbox_config: pod.config }, 30_000);
    const res = (r: Record<string, string>) => createIn(ctrConfig('res', { linux: { resources: r } }));

    const cases: [string, () => Promise<unknown>, GrpcCode, RegExp][] = [
      // Names, labels, annotations.
      [
        '10,000 labels on a pod',
        () => cri.runtime.RunPodSandbox({ config: podConfig('labels', { labels: tenThousand }) }),
        GrpcCode.INVALID_ARGUMENT,
        /config\.labels.*10000 entries/,
      ],
      [
        '10,000 labels on a container',
        () => createIn(ctrConfig('labels', { labels: tenThousand })),
        GrpcCode.INVALID_ARGUMENT,
        /config\.labels/,
      ],
      [
        'a 1 MiB pod name',
        () => cri.runtime.RunPodSandbox({ config: podConfig(mib) }),
        GrpcCode.INVALID_ARGUMENT,
        /config\.metadata\.name.*1048576 bytes/,
      ],
      [
        'a 1 MiB container name',
        () => createIn(ctrConfig(mib)),
        GrpcCode.INVALID_ARGUMENT,
        /config\.metadata\.name/,
      ],
      [
        'CNI arguments smuggled in a pod name',
        () =>
          cri.runtime.RunPodSandbox({
            config: { ...podConfig('cni'), metadata: { name: 'a;IP=10.85.0.1', namespace: 'e2e', uid: 'u' } },
          }),
        GrpcCode.INVALID_ARGUMENT,
        /config\.metadata\.name.*CNI_ARGS/,
      ],
      [
        'a NUL in a container name (conmon gets it in argv)',
        () => createIn(ctrConfig('a\u0000b')),
        GrpcCode.INVALID_ARGUMENT,
        /config\.metadata\.name.*NUL/,
      ],
      [
        'a label value that was invalid UTF-8',
        () => cri.runtime.RunPodSandbox({ config: podConfig('utf', { labels: { a: 'x\ufffd' } }) }),
        GrpcCode.INVALID_ARGUMENT,
        /config\.labels\["a"\].*invalid UTF-8/,
      ],
      [
        'a host name longer than the kernel takes',
        () => cri.runtime.RunPodSandbox({ config: podConfig('hn', { hostname: 'h'.repeat(65) }) }),
        GrpcCode.INVALID_ARGUMENT,
        /config\.hostname.*at most 64 bytes/,
      ],
      [
        '600 KiB of annotations',
        () =>
          cri.runtime.RunPodSandbox({
            config: podConfig('ann', { annotations: { big: 'a'.repeat(600 * 1024) } }),
          }),
        GrpcCode.INVALID_ARGUMENT,
        /config\.annotations.*524288 bytes/,
      ],
      [
        'no metadata',
        () => cri.runtime.RunPodSandbox({ config: { hostname: 'x' } }),
        GrpcCode.INVALID_ARGUMENT,
        /config\.metadata/,
      ],
      // Paths.
      [
        'a log_path escaping the pod log directory',
        () => createIn(ctrConfig('esc', { log_path: '../../../etc/evil.log' })),
        GrpcCode.INVALID_ARGUMENT,
        /config\.log_path/,
      ],
      [
        'a NUL in log_path',
        () => createIn(ctrConfig('nul', { log_path: 'a\u0000.log' })),
        GrpcCode.INVALID_ARGUMENT,
        /config\.log_path.*NUL/,
      ],
      [
        'a relative log_directory',
        () => cri.runtime.RunPodSandbox({ config: podConfig('rel', { log_directory: '../../tmp' }) }),
        GrpcCode.INVALID_ARGUMENT,
        /config\.log_directory.*absolute/,
      ],
      [
        'an empty mount container_path',
        () => createIn(ctrConfig('mnt', { mounts: [{ container_path: '', host_path: '/tmp' }] })),
        GrpcCode.INVALID_ARGUMENT,
        /config\.mounts\[0\]\.container_path.*required/,
      ],
      [
        'a relative mount host_path (it would be under the daemon’s working directory)',
        () => createIn(ctrConfig('mnt', { mounts: [{ container_path: '/x', host_path: 'etc' }] })),
        GrpcCode.INVALID_ARGUMENT,
        /config\.mounts\[0\]\.host_path.*absolute/,
      ],
      [
        'a NUL in a mount host_path',
        () => createIn(ctrConfig('mnt', { mounts: [{ container_path: '/x', host_path: '/tmp\u0000/x' }] })),
        GrpcCode.INVALID_ARGUMENT,
        /config\.mounts\[0\]\.host_path.*NUL/,
      ],
      [
        'a relative working_dir',
        () => createIn(ctrConfig('wd', { working_dir: '../..' })),
        GrpcCode.INVALID_ARGUMENT,
        /config\.working_dir.*absolute/,
      ],
      [
        'path traversal in an image reference',
        () => createIn(ctrConfig('img', { image: { image: '../../../etc/passwd' } })),
        GrpcCode.INVALID_ARGUMENT,
        /config\.image\.image/,
      ],
      [
        'path traversal in a pulled reference',
        () => cri.image.PullImage({ image: { image: '127.0.0.1:1/../../etc/passwd' } }),
        GrpcCode.INVALID_ARGUMENT,
        /image\.image/,
      ],
      [
        'an empty image in ImageStatus',
        () => cri.image.ImageStatus({ image: { image: '' } }),
        GrpcCode.INVALID_ARGUMENT,
        /image\.image.*required/,
      ],
      [
        'a 1 MiB image to remove',
        () => cri.image.RemoveImage({ image: { image: mib } }),
        GrpcCode.INVALID_ARGUMENT,
        /image\.image.*1048576 bytes/,
      ],
      [
        'huge credentials',
        () =>
          cri.image.PullImage({
            image: { image: '127.0.0.1:1/x:1' },
            auth: { username: 'u', password: 'p'.repeat(1024 * 1024) },
          }),
        GrpcCode.INVALID_ARGUMENT,
        /auth\.password/,
      ],
      [
        'a control character in registry credentials (they travel in HTTP headers)',
        () =>
          cri.image.PullImage({
            image: { image: '127.0.0.1:1/x:1' },
            auth: { registry_token: 'tok\r\nX-Injected: 1' },
          }),
        GrpcCode.INVALID_ARGUMENT,
        /auth\.registry_token.*control character/,
      ],
      // argv and environment.
      [
        'a NUL in the command',
        () => createIn(ctrConfig('argv', { command: ['sh', '-c\u0000rm'] })),
        GrpcCode.INVALID_ARGUMENT,
        /config\.command\[1\].*NUL/,
      ],
      [
        'an env without a name (runc refuses it)',
        () => createIn(ctrConfig('env', { envs: [{ key: '', value: Buffer.from('x') }] })),
        GrpcCode.INVALID_ARGUMENT,
        /config\.envs\[0\]\.key.*required/,
      ],
      // Resources.
      ['negative cpu_shares', () => res({ cpu_shares: '-1' }), GrpcCode.INVALID_ARGUMENT, /cpu_shares/],
      [
        'absurd cpu_shares',
        () => res({ cpu_shares: '9999999999' }),
        GrpcCode.INVALID_ARGUMENT,
        /cpu_shares.*out of range/,
      ],
      ['cpu_quota of -5', () => res({ cpu_quota: '-5' }), GrpcCode.INVALID_ARGUMENT, /cpu_quota/],
      ['cpu_period of 1', () => res({ cpu_period: '1' }), GrpcCode.INVALID_ARGUMENT, /cpu_period/],
      [
        'int64 max memory',
        () => res({ memory_limit_in_bytes: '9223372036854775807' }),
        GrpcCode.INVALID_ARGUMENT,
        /memory_limit_in_bytes/,
      ],
      ['negative memory', () => res({ memory_limit_in_bytes: '-4096' }), GrpcCode.INVALID_ARGUMENT, /memory/],
      [
        'oom_score_adj 5000',
        () => res({ oom_score_adj: '5000' }),
        GrpcCode.INVALID_ARGUMENT,
        /oom_score_adj/,
      ],
      [
        'a traversing huge page size',
        () =>
          createIn(
            ctrConfig('hp', {
              linux: { resources: { hugepage_limits: [{ page_size: '../../2MB', limit: '1' }] } },
            }),
          ),
        GrpcCode.INVALID_ARGUMENT,
        /hugepage_limits\[0\]\.page_size/,
      ],
      [
        'UpdateContainerResources with negative shares',
        () => cri.runtime.UpdateContainerResources({ container_id: ctr, linux: { cpu_shares: '-7' } }),
        GrpcCode.INVALID_ARGUMENT,
        /linux\.cpu_shares/,
      ],
      [
        'UpdatePodSandboxResources with oom_score_adj -5000',
        () =>
          cri.runtime.UpdatePodSandboxResources({
            pod_sandbox_id: pod.id,
            resources: { oom_score_adj: '-5000' },
          }),
        GrpcCode.INVALID_ARGUMENT,
        /resources\.oom_score_adj/,
      ],
      // Ids, filters, streaming. (Negative timeouts are 0, as in containerd and CRI-O.)
      [
        'a 1 MiB container id (no crisp id)',
        () => cri.runtime.ContainerStatus({ container_id: mib }),
        GrpcCode.NOT_FOUND,
        /container .*not found/,
      ],
      [
        '10,000 labels in a selector',
        () => cri.runtime.ListPodSandbox({ filter: { label_selector: tenThousand } }),
        GrpcCode.INVALID_ARGUMENT,
        /filter\.label_selector/,
      ],

      [
        'Exec with a NUL in argv',
        () => cri.runtime.Exec({ container_id: ctr, cmd: ['sh\u0000'], stdout: true }),
        GrpcCode.INVALID_ARGUMENT,
        /cmd\[0\]/,
      ],
      [
        'PortForward with 2000 ports',
        () =>
          cri.runtime.PortForward({ pod_sandbox_id: pod.id, port: Array.from({ length: 2000 }, () => 80) }),
        GrpcCode.INVALID_ARGUMENT,
        /port.*2000 entries/,
      ],
      [
        'a nonsense pod CIDR',
        () =>
          cri.runtime.UpdateRuntimeConfig({
            runtime_config: { network_config: { pod_cidr: 'x'.repeat(5000) } },
          }),
        GrpcCode.INVALID_ARGUMENT,
        /runtime_config\.network_config\.pod_cidr/,
      ],
      // Enum values from nowhere (proto3 enums are open).
      [
        'an unknown stop signal',
        () => createIn({ ...ctrConfig('sig'), stop_signal: 99 as unknown as 'SIGTERM' }),
        GrpcCode.INVALID_ARGUMENT,
        /config\.stop_signal/,
      ],
      [
        'an unknown network namespace mode',
        () =>
          cri.runtime.RunPodSandbox({
            config: podConfig('ns', {
              linux: { security_context: { namespace_options: { network: 42 as unknown as 'POD' } } },
            }),
          }),
        GrpcCode.INVALID_ARGUMENT,
        /config\.linux\.security_context\.namespace_options\.network/,
      ],
    ];

    const failures: string[] = [];
    for (const [what, call, code, message] of cases) {
      const err = await rejection(call());
      if (err.code !== code || !message.test(err.details)) {
        failures.push(`${what}: got ${GrpcCode[err.code]} ${JSON.stringify(err.details.slice(0, 300))}`);
      }
      assert.ok(err.details.length <= 5000, `${what}: a ${err.details.length}-character message`);
    }
    assert.deepEqual(failures, [], failures.join('\n'));
    // Ids that are no crisp id name nothing: the idempotent RPCs succeed, filters match nothing.
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: mib });
    await cri.runtime.RemoveContainer({ container_id: mib });
    assert.deepEqual((await cri.runtime.ListContainers({ filter: { id: mib } })).containers, []);
    assert.deepEqual(await snapshot(), before_, 'nothing was created or written');
  });

  it('refuses invalid UTF-8 in a name, sent as raw bytes', async () => {
    const before_ = await snapshot();
    // A valid request built by hand is accepted first: the raw path itself works.
    const ok = await rawUnary('RuntimeService', 'Version', Buffer.alloc(0));
    assert.ok(ok.length > 0, 'Version answered');
    for (const name of [
      Buffer.from([0x70, 0x6f, 0x64, 0xff, 0xfe]), // "pod" + bytes that are never UTF-8
      Buffer.from([0xc3, 0x28]), // a broken two-byte sequence
      Buffer.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate, invalid in UTF-8
    ]) {
      const err = await rejection(rawUnary('RuntimeService', 'RunPodSandbox', runPodSandboxBytes(name)));
      assert.equal(err.code, GrpcCode.INVALID_ARGUMENT, err.details);
      assert.match(err.details, /config\.metadata\.name.*invalid UTF-8/);
    }
    // Garbage that is not protobuf at all: grpc-js cannot decode it.
    const garbage = await rejection(
      rawUnary('RuntimeService', 'RunPodSandbox', Buffer.from([0x0a, 0xff, 0xff])),
    );
    assert.notEqual(garbage.code, GrpcCode.OK);
    assert.deepEqual(await snapshot(), before_, 'nothing was created or written');
  });

  it('refuses a message past the 16 MiB limit and keeps serving', async () => {
    const err = await rejection(
      cri.runtime.RunPodSandbox(
        { config: podConfig('huge', { annotations: { a: 'x'.repeat(17 * 1024 * 1024) } }) },
        60_000,
      ),
    );
    assert.equal(err.code, GrpcCode.RESOURCE_EXHAUSTED, err.details);
    const v = await cri.runtime.Version({});
    assert.equal(v.runtime_name, 'crisp');
  });

  it('is still alive and healthy afterwards, and logged no server fault', async () => {
    assert.equal(crisp.child.exitCode, null, 'the daemon is running');
    assert.equal((await cri.runtime.Version({})).runtime_name, 'crisp');
    const st = await cri.runtime.ContainerStatus({ container_id: ctr });
    assert.equal(st.status?.state, 'CONTAINER_RUNNING', 'the pod and container are untouched');
    const faults = crisp.logs.filter((l) => l.level >= 50);
    assert.deepEqual(
      faults.map((l) => `${l.msg} ${String(l.rpc)} ${String(l.code)}`),
      [],
      'no error or fatal log lines',
    );
  });
});
