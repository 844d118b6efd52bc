import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import type { ImageRunConfig } from '../image/types.js';
import { DEFAULT_PATH } from './args.js';
import {
  apparmorProfile,
  ALL_CAPABILITIES,
  DEFAULT_CAPABILITIES,
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  MIN_MEMORY_LIMIT_BYTES,
  buildContainerSpec,
  buildInfraSpec,
  capabilitiesFromMask,
  capabilitySet,
  cgroupsPath,
  effectiveOomScoreAdj,
  hostCapabilities,
  missingSysctls,
  normalizeSysctlName,
  podSysctls,
  sysctlNamespace,
  type ContainerSpecFacts,
} from './spec.js';
import type {
  ContainerResourcesInput,
  ContainerSecurityInput,
  ContainerSpecInput,
  ContainerSpecResolved,
  InfraSpecInput,
  PodContext,
} from './spec-types.js';

const CID = 'c'.repeat(64);
const SID = 's'.repeat(64);

function run(over: Partial<ImageRunConfig> = {}): ImageRunConfig {
  return {
    user: '',
    env: ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8'],
    entrypoint: ['/docker-entrypoint.sh'],
    cmd: ['nginx', '-g', 'daemon off;'],
    workingDir: '',
    stopSignal: '',
    volumes: [],
    exposedPorts: [],
    labels: {},
    ...over,
  };
}

function pod(over: Partial<PodContext> = {}): PodContext {
  return {
    sandboxId: SID,
    sandboxName: 'web-0',
    sandboxNamespace: 'default',
    sandboxUid: 'uid-1',
    hostname: 'web-0',
    infraPid: 4242,
    netnsPath: '/run/crisp/netns/cni-1',
    hostNetwork: false,
    hostIpc: false,
    hostPid: false,
    privileged: false,
    cgroupParent: '/kubepods/burstable/poduid-1',
    cgroupDriver: 'cgroupfs',
    resolvConfPath: '/run/crisp/sandboxes/s/resolv.conf',
    hostsPath: '/run/crisp/sandboxes/s/hosts',
    hostnamePath: '/run/crisp/sandboxes/s/hostname',
    shmPath: '/run/crisp/sandboxes/s/shm',
    logDirectory: '/var/log/pods/default_web-0_uid-1',
    ...over,
  };
}

function container(
  over: Partial<ContainerSpecInput> = {},
  security?: ContainerSecurityInput,
): ContainerSpecInput {
  return {
    id: CID,
    name: 'nginx',
    sandboxId: SID,
    image: { id: `sha256:${'1'.repeat(64)}`, ref: 'nginx:1.25', run: run() },
    command: [],
    args: [],
    workingDir: '',
    envs: [{ key: 'MODE', value: 'prod' }],
    mounts: [],
    devices: [],
    labels: { app: 'web' },
    annotations: { 'example.test/a': '1' },
    tty: false,
    stdin: false,
    stdinOnce: false,
    linux: security === undefined ? {} : { securityContext: security },
    ...over,
  };
}

const resolved: ContainerSpecResolved = {
  rootfsPath: '/var/lib/crisp/containers/c/rootfs',
  user: { uid: 101, gid: 101, additionalGids: [101] },
};

function build(input = container(), p = pod(), r: Partial<ContainerSpecFacts> = {}) {
  return buildContainerSpec(input, p, { ...resolved, ...r });
}

const BIND = (destination: string, source: string, ...options: string[]) => ({
  destination,
  type: 'bind',
  source,
  options: ['rbind', ...options],
});

describe('buildContainerSpec', () => {
  it('writes the process from the image and request', () => {
    const spec = build();
    assert.equal(spec.ociVersion, '1.0.2-dev');
    assert.deepEqual(spec.process.args, ['/docker-entrypoint.sh', 'nginx', '-g', 'daemon off;']);
    assert.deepEqual(spec.process.env, ['PATH=/usr/bin:/bin', 'HOSTNAME=web-0', 'LANG=C.UTF-8', 'MODE=prod']);
    assert.equal(spec.process.cwd, '/');
    assert.equal(spec.process.terminal, false);
    assert.deepEqual(spec.process.user, { uid: 101, gid: 101, additionalGids: [101] });
    assert.equal(spec.process.noNewPrivileges, false);
    assert.equal(spec.process.oomScoreAdj, 0);
    assert.deepEqual(spec.root, { path: resolved.rootfsPath, readonly: false });
    assert.equal(spec.hostname, undefined);
    assert.equal('seccomp' in spec.linux, false);
    assert.equal('rlimits' in spec.process, false);
    assert.equal(build(container({ tty: true })).process.terminal, true);
  });

  it('chooses the working directory: request, image, then /', () => {
    assert.equal(build(container({ workingDir: '/srv/' })).process.cwd, '/srv');
    const img = container({ image: { id: 'x', ref: 'app', run: run({ workingDir: '/app' }) } });
    assert.equal(build(img).process.cwd, '/app');
    const rel = container({ image: { id: 'x', ref: 'app', run: run({ workingDir: 'app/' }) } });
    assert.equal(build(rel).process.cwd, '/app');
    assert.throws(() => build(container({ workingDir: 'rel' })), InvalidArgumentError);
  });

  it('joins the pod: pinned netns, infra ipc/uts, new pid and mount', () => {
    assert.deepEqual(build().linux.namespaces, [
      { type: 'pid' },
      { type: 'network', path: '/run/crisp/netns/cni-1' },
      { type: 'ipc', path: '/proc/4242/ns/ipc' },
      { type: 'uts', path: '/proc/4242/ns/uts' },
      { type: 'mount' },
    ]);
  });

  it('joins the pod’s user namespace first, with its maps', () => {
    const userns = {
      uids: [{ containerID: 0, hostID: 3_000_000, size: 65536 }],
      gids: [{ containerID: 0, hostID: 3_000_000, size: 65536 }],
    };
    const spec = build(container(), pod({ userns }));
    assert.deepEqual(spec.linux.namespaces, [
      { type: 'user', path: '/proc/4242/ns/user' },
      { type: 'pid' },
      { type: 'network', path: '/run/crisp/netns/cni-1' },
      { type: 'ipc', path: '/proc/4242/ns/ipc' },
      { type: 'uts', path: '/proc/4242/ns/uts' },
      { type: 'mount' },
    ]);
    assert.deepEqual(spec.linux.uidMappings, userns.uids);
    assert.deepEqual(spec.linux.gidMappings, userns.gids);
  });

  it('follows the pid namespace mode', () => {
    const pidNs = (s: ContainerSecurityInput, r: Partial<ContainerSpecResolved> = {}) =>
      build(container({}, s), pod(), r).linux.namespaces.filter((n) => n.type === 'pid');
    assert.deepEqual(pidNs({ namespaces: { pid: 'pod' } }), [{ type: 'pid', path: '/proc/4242/ns/pid' }]);
    assert.deepEqual(
      build(container({}, { namespaces: { pid: 'node' } }), pod({ hostPid: true })).linux.namespaces.filter(
        (n) => n.type === 'pid',
      ),
      [],
    );
    // NODE in a pod that does not share the node's namespace: the node's all the same (CRI-O).
    assert.deepEqual(pidNs({ namespaces: { pid: 'node' } }), []);
    // ... except from a pod's own user namespace, from which the kernel cannot join it.
    const userns = {
      uids: [{ containerID: 0, hostID: 3_000_000, size: 65536 }],
      gids: [{ containerID: 0, hostID: 3_000_000, size: 65536 }],
    };
    assert.throws(
      () => build(container({}, { namespaces: { pid: 'node' } }), pod({ userns })),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === 'config.linux.security_context.namespace_options.pid' &&
        /user namespace/.test(err.message),
    );
    assert.deepEqual(pidNs({ namespaces: { pid: 'target', targetId: 'x' } }, { targetPid: 77 }), [
      { type: 'pid', path: '/proc/77/ns/pid' },
    ]);
    assert.throws(() => pidNs({ namespaces: { pid: 'target', targetId: 'x' } }), FailedPreconditionError);
  });

  it('leaves out the namespaces the pod shares with the host', () => {
    const spec = build(container(), pod({ hostNetwork: true, netnsPath: undefined, hostIpc: true }));
    assert.deepEqual(spec.linux.namespaces, [{ type: 'pid' }, { type: 'mount' }]);
  });

  it('falls back to the infra netns without a pinned one, and needs an infra pid', () => {
    assert.deepEqual(build(container(), pod({ netnsPath: undefined })).linux.namespaces[1], {
      type: 'network',
      path: '/proc/4242/ns/net',
    });
    assert.throws(() => build(container(), pod({ infraPid: 0 })), FailedPreconditionError);
  });

  it('adds a cgroup namespace on cgroup v2 unless privileged', () => {
    assert.deepEqual(build(container(), pod(), { cgroupV2: true }).linux.namespaces.at(-1), {
      type: 'cgroup',
    });
    const priv = build(container({}, { privileged: true }), pod({ privileged: true }), { cgroupV2: true });
    assert.equal(
      priv.linux.namespaces.some((n) => n.type === 'cgroup'),
      false,
    );
  });

  it('adds a mount’s extra options after its own', () => {
    const spec = build(
      container({
        mounts: [
          {
            containerPath: '/vol',
            hostPath: '/var/lib/crisp/containers/c/image-volumes/0',
            readonly: true,
            propagation: 'private',
            extraOptions: ['nosuid', 'nodev', 'noexec'],
          },
        ],
      }),
    );
    assert.deepEqual(spec.mounts.find((m) => m.destination === '/vol')?.options, [
      'rbind',
      'rprivate',
      'ro',
      'nosuid',
      'nodev',
      'noexec',
    ]);
  });

  it('mounts defaults, then CRI mounts and pod files sorted by depth', () => {
    const spec = build(
      container({
        mounts: [
          { containerPath: '/data/cache', hostPath: '/srv/cache', readonly: false, propagation: 'private' },
          {
            containerPath: '/etc/hosts',
            hostPath: '/var/lib/kubelet/pods/u/etc-hosts',
            readonly: false,
            propagation: 'private',
          },
          {
            containerPath: '/data/',
            hostPath: '/srv/data/',
            readonly: true,
            propagation: 'host-to-container',
          },
          {
            containerPath: '/dev/termination-log',
            hostPath: '/var/lib/kubelet/pods/u/containers/nginx/abc',
            readonly: false,
            propagation: 'private',
          },
        ],
      }),
    );
    assert.deepEqual(spec.mounts, [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      {
        destination: '/dev/mqueue',
        type: 'mqueue',
        source: 'mqueue',
        options: ['nosuid', 'noexec', 'nodev'],
      },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      {
        destination: '/sys/fs/cgroup',
        type: 'cgroup',
        source: 'cgroup',
        options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
      },
      BIND('/data', '/srv/data', 'rslave', 'ro'),
      BIND('/data/cache', '/srv/cache', 'rprivate', 'rw'),
      BIND('/etc/hosts', '/var/lib/kubelet/pods/u/etc-hosts', 'rprivate', 'rw'),
      BIND('/dev/termination-log', '/var/lib/kubelet/pods/u/containers/nginx/abc', 'rprivate', 'rw'),
      BIND('/etc/hostname', '/run/crisp/sandboxes/s/hostname', 'rprivate', 'rw'),
      BIND('/etc/resolv.conf', '/run/crisp/sandboxes/s/resolv.conf', 'rprivate', 'rw'),
      BIND('/dev/shm', '/run/crisp/sandboxes/s/shm', 'rprivate', 'rw'),
    ]);
    assert.equal(spec.linux.rootfsPropagation, 'rslave');
  });

  it('sets rootfsPropagation: rshared wins, private leaves it unset', () => {
    const m = (propagation: 'private' | 'host-to-container' | 'bidirectional', p: string) => ({
      containerPath: p,
      hostPath: '/srv' + p,
      readonly: false,
      propagation,
    });
    assert.equal(build().linux.rootfsPropagation, undefined);
    const spec = build(container({ mounts: [m('bidirectional', '/a'), m('host-to-container', '/b')] }));
    assert.equal(spec.linux.rootfsPropagation, 'rshared');
    assert.deepEqual(spec.mounts.find((x) => x.destination === '/a')?.options, ['rbind', 'rshared', 'rw']);
  });

  it('makes the pod files read-only with a read-only rootfs, but not /dev/shm', () => {
    const spec = build(container({}, { readonlyRootfs: true }));
    assert.equal(spec.root.readonly, true);
    const opts = Object.fromEntries(
      spec.mounts.filter((m) => m.type === 'bind').map((m) => [m.destination, m.options]),
    );
    assert.deepEqual(opts, {
      '/etc/hostname': ['rbind', 'rprivate', 'ro'],
      '/etc/hosts': ['rbind', 'rprivate', 'ro'],
      '/etc/resolv.conf': ['rbind', 'rprivate', 'ro'],
      '/dev/shm': ['rbind', 'rprivate', 'rw'],
    });
  });

  it("binds the host's /dev/shm with host IPC", () => {
    const spec = build(container(), pod({ hostIpc: true }));
    assert.deepEqual(
      spec.mounts.find((m) => m.destination === '/dev/shm'),
      BIND('/dev/shm', '/dev/shm', 'rprivate', 'rw'),
    );
  });

  it('drops everything under /dev when /dev is mounted', () => {
    const spec = build(
      container({
        mounts: [{ containerPath: '/dev', hostPath: '/dev', readonly: false, propagation: 'private' }],
      }),
    );
    assert.deepEqual(
      spec.mounts.filter((m) => m.destination.startsWith('/dev')).map((m) => `${m.type}:${m.destination}`),
      ['bind:/dev', 'bind:/dev/shm'],
    );
  });

  it('rejects relative mount paths', () => {
    assert.throws(
      () =>
        build(
          container({
            mounts: [{ containerPath: 'data', hostPath: '/x', readonly: false, propagation: 'private' }],
          }),
        ),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.field === 'config.mounts[0].container_path',
    );
  });

  it('uses the default masked and read-only paths, or the request’s verbatim', () => {
    const spec = build();
    assert.deepEqual(spec.linux.maskedPaths, DEFAULT_MASKED_PATHS);
    assert.deepEqual(spec.linux.readonlyPaths, DEFAULT_READONLY_PATHS);
    const given = build(container({}, { maskedPaths: ['/proc/kcore'], readonlyPaths: [] }));
    assert.deepEqual(given.linux.maskedPaths, ['/proc/kcore']);
    assert.deepEqual(given.linux.readonlyPaths, []);
  });

  it('gives privileged containers everything, in a privileged pod only', () => {
    const spec = build(
      container({}, { privileged: true, capabilities: { add: [], drop: ['ALL'] }, maskedPaths: ['/x'] }),
      pod({ privileged: true }),
    );
    assert.deepEqual(spec.process.capabilities.bounding, ALL_CAPABILITIES);
    assert.equal(spec.process.capabilities.bounding.length, 41);
    assert.deepEqual(spec.linux.maskedPaths, []);
    assert.deepEqual(spec.linux.readonlyPaths, []);
    assert.deepEqual(spec.linux.resources.devices, [{ allow: true, access: 'rwm' }]);
    assert.deepEqual(spec.mounts.find((m) => m.destination === '/sys')?.options, [
      'nosuid',
      'noexec',
      'nodev',
    ]);
    assert.deepEqual(spec.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.options, [
      'nosuid',
      'noexec',
      'nodev',
      'relatime',
    ]);
    assert.throws(
      () => build(container({}, { privileged: true })),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.field === 'config.linux.security_context.privileged',
    );
  });

  it('gives privileged containers only the capabilities crisp holds, when it knows them', () => {
    const available = ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE');
    const spec = build(container({}, { privileged: true }), pod({ privileged: true }), {
      availableCapabilities: available,
    });
    assert.deepEqual(spec.process.capabilities.bounding, available);
    assert.deepEqual(spec.process.capabilities.effective, available);
    assert.deepEqual(
      build(container(), pod(), { availableCapabilities: available }).process.capabilities.bounding,
      [...DEFAULT_CAPABILITIES],
    );
  });

  it('writes the same capability set to bounding, effective and permitted', () => {
    const caps = build().process.capabilities;
    assert.deepEqual(caps.bounding, DEFAULT_CAPABILITIES);
    assert.deepEqual(caps.effective, DEFAULT_CAPABILITIES);
    assert.deepEqual(caps.permitted, DEFAULT_CAPABILITIES);
    assert.equal('inheritable' in caps, false);
    assert.equal('ambient' in caps, false);
  });

  it('sets noNewPrivileges and the devices cgroup', () => {
    const spec = build(container({}, { noNewPrivs: true }));
    assert.equal(spec.process.noNewPrivileges, true);
    assert.deepEqual(spec.linux.resources, { devices: [{ allow: false, access: 'rwm' }] });
  });

  it('creates the resolved device nodes and allows each with its access', () => {
    const fuse = {
      path: '/dev/fuse',
      type: 'c' as const,
      major: 10,
      minor: 229,
      fileMode: 0o600,
      uid: 0,
      gid: 0,
    };
    const loop = {
      path: '/dev/xloop',
      type: 'b' as const,
      major: 7,
      minor: 0,
      fileMode: 0o660,
      uid: 0,
      gid: 6,
    };
    const spec = build(container(), pod(), {
      devices: [
        { ...fuse, access: 'rwm' },
        { ...loop, access: 'r' },
      ],
    });
    assert.deepEqual(spec.linux.devices, [fuse, loop]);
    assert.deepEqual(spec.linux.resources.devices, [
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 10, minor: 229, access: 'rwm' },
      { allow: true, type: 'b', major: 7, minor: 0, access: 'r' },
    ]);
    assert.equal('devices' in build().linux, false);
    const privileged = build(container({}, { privileged: true }), pod({ privileged: true }), {
      devices: [{ ...fuse, access: 'r' }],
    });
    assert.deepEqual(privileged.linux.devices, [fuse]);
    assert.deepEqual(privileged.linux.resources.devices, [{ allow: true, access: 'rwm' }]);
  });

  it('writes resources, ignoring unset (0/empty) values', () => {
    const input = container({
      linux: {
        resources: {
          cpuShares: 512,
          cpuQuota: 50000,
          cpuPeriod: 100000,
          memoryLimitBytes: 256 * 1024 * 1024,
          cpusetCpus: '0-1',
          cpusetMems: '',
          oomScoreAdj: 900,
        },
      },
    });
    assert.deepEqual(build(input).linux.resources, {
      devices: [{ allow: false, access: 'rwm' }],
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0-1' },
      memory: { limit: 268435456 },
    });
    assert.deepEqual(build(input, pod(), { swapControllerAvailable: true }).linux.resources.memory, {
      limit: 268435456,
      swap: 268435456,
    });
    assert.equal(build(input).process.oomScoreAdj, 900);
    assert.throws(
      () => build(container({ linux: { resources: { cpuShares: -5 } } })),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.field === 'config.linux.resources.cpu_shares',
    );
  });

  it('limits pids from crisp.toml, 0 and -1 meaning none', () => {
    assert.deepEqual(build(container(), pod(), { pidsLimit: 64 }).linux.resources.pids, { limit: 64 });
    assert.equal('pids' in build(container(), pod(), { pidsLimit: 0 }).linux.resources, false);
    assert.equal('pids' in build(container(), pod(), { pidsLimit: -1 }).linux.resources, false);
  });

  it('writes huge page limits for the sizes the node has, dropping or refusing them without hugetlb', () => {
    const input = container({
      linux: {
        resources: {
          hugepageLimits: [
            { pageSize: '2MB', limit: 4 << 20 },
            { pageSize: '1GB', limit: 0 },
          ],
        },
      },
    });
    const facts = { hugepageSizes: ['2MB', '1GB'], hugetlbControllerAvailable: true };
    assert.deepEqual(build(input, pod(), facts).linux.resources.hugepageLimits, [
      { pageSize: '2MB', limit: 4194304 },
      { pageSize: '1GB', limit: 0 },
    ]);
    const missing = { hugepageSizes: ['2MB', '1GB'], hugetlbControllerAvailable: false };
    assert.equal('hugepageLimits' in build(input, pod(), missing).linux.resources, false, 'tolerated');
    assert.throws(
      () => build(input, pod(), { ...missing, tolerateMissingHugetlbController: false }),
      (err: unknown) =>
        err instanceof FailedPreconditionError && err.message.includes('tolerate_missing_hugetlb_controller'),
    );
    for (const pageSize of ['64KB', '2mb', '', '0MB']) {
      assert.throws(
        () =>
          build(
            container({ linux: { resources: { hugepageLimits: [{ pageSize, limit: 0 }] } } }),
            pod(),
            facts,
          ),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === 'config.linux.resources.hugepage_limits[0].page_size' &&
          err.message.includes(JSON.stringify(pageSize)) &&
          err.message.includes('2MB, 1GB'),
      );
    }
  });

  it('writes unified cgroup v2 settings on v2 only, refusing them on v1 by name', () => {
    const input = container({ linux: { resources: { unified: { 'memory.high': '50000000' } } } });
    assert.deepEqual(build(input, pod(), { cgroupV2: true }).linux.resources.unified, {
      'memory.high': '50000000',
    });
    assert.throws(
      () => build(input),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === 'config.linux.resources.unified' &&
        err.message.includes('"memory.high"') &&
        err.message.includes('cgroup v1'),
    );
    for (const key of ['../memory.high', 'memory', 'Memory.high']) {
      assert.throws(
        () =>
          build(container({ linux: { resources: { unified: { [key]: '1' } } } }), pod(), { cgroupV2: true }),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === `config.linux.resources.unified[${JSON.stringify(key)}]`,
      );
    }
  });

  it('refuses resources the kernel or runc cannot apply, naming the field and value', () => {
    const refused = (resources: ContainerResourcesInput, field: string, value: string) => {
      assert.throws(
        () => build(container({ linux: { resources } })),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === `config.linux.resources.${field}` &&
          err.message.includes(value),
      );
    };
    refused({ cpuQuota: -5 }, 'cpu_quota', '-5');
    refused({ cpuQuota: 999 }, 'cpu_quota', '999');
    refused({ cpuPeriod: -1 }, 'cpu_period', '-1');
    refused({ cpuPeriod: 999 }, 'cpu_period', '999');
    refused({ cpuPeriod: 1_000_001 }, 'cpu_period', '1000001');
    refused({ memoryLimitBytes: MIN_MEMORY_LIMIT_BYTES - 1 }, 'memory_limit_in_bytes', '4194303');
    refused({ memoryLimitBytes: -1 }, 'memory_limit_in_bytes', '-1');
    const ok = build(
      container({
        linux: {
          resources: { cpuQuota: -1, cpuPeriod: 1000, memoryLimitBytes: MIN_MEMORY_LIMIT_BYTES },
        },
      }),
    ).linux.resources;
    assert.deepEqual(ok.cpu, { quota: -1, period: 1000 });
    assert.deepEqual(ok.memory, { limit: MIN_MEMORY_LIMIT_BYTES });
  });

  it('raises oom_score_adj to the floor', () => {
    const input = container({ linux: { resources: { oomScoreAdj: -997 } } });
    assert.equal(build(input).process.oomScoreAdj, -997);
    assert.equal(build(input, pod(), { oomScoreAdjFloor: -500 }).process.oomScoreAdj, -500);
    assert.equal(build(container(), pod(), { oomScoreAdjFloor: -500 }).process.oomScoreAdj, 0);
    assert.equal(effectiveOomScoreAdj(1000, 100), 1000);
    assert.throws(() => effectiveOomScoreAdj(1001, undefined), InvalidArgumentError);
  });

  it('writes cgroupsPath for both drivers', () => {
    assert.equal(build().linux.cgroupsPath, `/kubepods/burstable/poduid-1/crisp-${CID}`);
    assert.equal(
      build(container(), pod({ cgroupDriver: 'systemd', cgroupParent: 'kubepods-burstable-poduid_1.slice' }))
        .linux.cgroupsPath,
      `kubepods-burstable-poduid_1.slice:crisp:${CID}`,
    );
  });

  it('annotates like containerd, over the request’s annotations', () => {
    const input = container({
      annotations: { 'example.test/a': '1', 'io.kubernetes.cri.container-type': 'spoofed' },
    });
    assert.deepEqual(build(input).annotations, {
      'example.test/a': '1',
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.sandbox-id': SID,
      'io.kubernetes.cri.sandbox-name': 'web-0',
      'io.kubernetes.cri.sandbox-namespace': 'default',
      'io.kubernetes.cri.sandbox-uid': 'uid-1',
      'io.kubernetes.cri.container-name': 'nginx',
      'io.kubernetes.cri.image-name': 'nginx:1.25',
    });
  });

  it('is JSON-serialisable and deterministic', () => {
    assert.equal(JSON.stringify(build()), JSON.stringify(build()));
  });
});

describe('capabilitySet', () => {
  const caps = (add: string[], drop: string[]) => capabilitySet({ capabilities: { add, drop } });

  it('defaults to the 14', () => {
    assert.deepEqual(capabilitySet(undefined), DEFAULT_CAPABILITIES);
    assert.equal(DEFAULT_CAPABILITIES.length, 14);
  });

  it('adds and drops, with or without CAP_, any case', () => {
    const set = caps(['NET_ADMIN', 'cap_sys_time', 'CHOWN'], ['MKNOD', 'CAP_NET_RAW']);
    assert.deepEqual(set, [
      ...DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_MKNOD' && c !== 'CAP_NET_RAW'),
      'CAP_NET_ADMIN',
      'CAP_SYS_TIME',
    ]);
  });

  it('drops ALL, then adds', () => {
    assert.deepEqual(caps(['NET_BIND_SERVICE'], ['ALL']), ['CAP_NET_BIND_SERVICE']);
  });

  it('adds ALL, then drops', () => {
    const set = caps(['ALL'], ['SYS_ADMIN']);
    assert.deepEqual(
      set,
      ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_ADMIN'),
    );
  });

  it('add ALL and drop ALL leaves only the individual adds', () => {
    assert.deepEqual(caps(['all', 'KILL'], ['ALL']), ['CAP_KILL']);
  });

  it('lets a drop win over an add of the same capability', () => {
    assert.equal(caps(['SYS_ADMIN'], ['SYS_ADMIN']).includes('CAP_SYS_ADMIN'), false);
  });

  it('rejects malformed and unknown names, naming the field and the name', () => {
    assert.throws(
      () => caps(['NET ADMIN'], []),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === 'config.linux.security_context.capabilities.add_capabilities[0]',
    );
    assert.throws(
      () => caps(['KILL', 'NOT_A_CAP'], []),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === 'config.linux.security_context.capabilities.add_capabilities[1]' &&
        err.message.includes('"NOT_A_CAP"'),
    );
  });

  it('ignores a dropped name Linux does not have (dropping it takes nothing away)', () => {
    assert.deepEqual(caps([], ['cap_nope', 'NOT A CAP']), DEFAULT_CAPABILITIES);
    assert.deepEqual(
      caps([], ['cap_nope', 'kill']),
      DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_KILL'),
    );
  });

  it('limits ALL to the available capabilities and refuses an add of another', () => {
    const available = ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE');
    const withAvailable = (add: string[], drop: string[]) =>
      capabilitySet({ capabilities: { add, drop } }, available);
    assert.deepEqual(withAvailable(['ALL'], []), available);
    assert.deepEqual(capabilitySet({ privileged: true }, available), available);
    assert.deepEqual(withAvailable(['SYS_RESOURCE'], ['SYS_RESOURCE']), DEFAULT_CAPABILITIES);
    assert.throws(
      () => withAvailable(['SYS_RESOURCE'], []),
      (err: unknown) => err instanceof FailedPreconditionError && /SYS_RESOURCE/.test(err.message),
    );
    assert.deepEqual(capabilitySet(undefined, ['CAP_KILL', 'CAP_CHOWN']), ['CAP_CHOWN', 'CAP_KILL']);
  });
});

describe('hostCapabilities', () => {
  it('reads the bounding set, in capability number order', async () => {
    const status = 'Name:\tnode\nCapPrm:\t0000000000000000\nCapBnd:\t000001fffeffffff\nCapAmb:\t0\n';
    const caps = await hostCapabilities(status);
    assert.equal(caps.length, 40);
    assert.equal(caps.includes('CAP_SYS_RESOURCE'), false);
    assert.deepEqual(capabilitiesFromMask(0b1000000000001n), ['CAP_CHOWN', 'CAP_NET_ADMIN']);
    assert.deepEqual(capabilitiesFromMask((1n << 41n) - 1n), ALL_CAPABILITIES);
    assert.ok((await hostCapabilities()).length > 0, "this process's own status");
    await assert.rejects(hostCapabilities('Name:\tx\n'), /CapBnd/);
  });
});

describe('cgroupsPath', () => {
  it('cgroupfs', () => {
    assert.equal(cgroupsPath('cgroupfs', '/kubepods/podx/', 'id'), '/kubepods/podx/crisp-id');
    assert.equal(cgroupsPath('cgroupfs', 'kubepods', 'id'), '/kubepods/crisp-id');
    assert.equal(cgroupsPath('cgroupfs', '/', 'id'), '/crisp-id');
    assert.equal(cgroupsPath('cgroupfs', '', 'id'), '/crisp/id');
  });

  it('systemd', () => {
    assert.equal(cgroupsPath('systemd', 'kubepods.slice', 'id'), 'kubepods.slice:crisp:id');
    assert.equal(
      cgroupsPath(
        'systemd',
        '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice',
        'id',
      ),
      'kubepods-besteffort-podx.slice:crisp:id',
    );
    assert.equal(cgroupsPath('systemd', '', 'id'), 'system.slice:crisp:id');
    assert.throws(() => cgroupsPath('systemd', '/kubepods/podx', 'id'), InvalidArgumentError);
  });
});

describe('buildInfraSpec', () => {
  const pause: ImageRunConfig = run({
    entrypoint: ['/catatonit', '-P'],
    cmd: [],
    env: [],
    user: '65535:65535',
  });
  const infra = (over: Partial<InfraSpecInput> = {}, p: Partial<PodContext> = {}): InfraSpecInput => {
    const { infraPid: _unused, ...podInfo } = pod(p);
    return {
      image: { id: `sha256:${'2'.repeat(64)}`, ref: 'localhost/crisp/pause:latest', run: pause },
      pod: podInfo,
      sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0' },
      annotations: { 'example.test/pod': 'yes' },
      ...over,
    };
  };
  const infraResolved = {
    rootfsPath: '/var/lib/crisp/containers/s/rootfs',
    user: { uid: 65535, gid: 65535, additionalGids: [65535] },
  };

  it('writes the pause process', () => {
    const spec = buildInfraSpec(infra(), infraResolved);
    assert.deepEqual(spec.process.args, ['/catatonit', '-P']);
    assert.deepEqual(spec.process.env, [`PATH=${DEFAULT_PATH}`]);
    assert.equal(spec.process.cwd, '/');
    assert.deepEqual(spec.process.user, { uid: 65535, gid: 65535, additionalGids: [65535] });
    assert.deepEqual(spec.process.capabilities.bounding, DEFAULT_CAPABILITIES);
    assert.equal(spec.process.oomScoreAdj, -998);
    assert.deepEqual(spec.root, { path: infraResolved.rootfsPath, readonly: true });
    assert.equal(spec.hostname, 'web-0');
    assert.deepEqual(spec.linux.sysctl, { 'net.ipv4.ip_unprivileged_port_start': '0' });
    assert.deepEqual(spec.linux.resources, {
      devices: [{ allow: false, access: 'rwm' }],
      cpu: { shares: 2 },
    });
    assert.equal(spec.linux.cgroupsPath, `/kubepods/burstable/poduid-1/crisp-${SID}`);
    assert.equal('seccomp' in spec.linux, false);
  });

  it('creates namespaces, joining only the pinned netns', () => {
    assert.deepEqual(buildInfraSpec(infra(), infraResolved).linux.namespaces, [
      { type: 'pid' },
      { type: 'network', path: '/run/crisp/netns/cni-1' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
    ]);
  });

  it('creates a user namespace with the pod’s maps, and a network namespace inside it', () => {
    const userns = {
      uids: [{ containerID: 0, hostID: 3_000_000, size: 65536 }],
      gids: [{ containerID: 0, hostID: 3_000_000, size: 65536 }],
    };
    const spec = buildInfraSpec(infra({}, { userns }), infraResolved);
    assert.deepEqual(spec.linux.namespaces, [
      { type: 'user' },
      { type: 'pid' },
      { type: 'network' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
    ]);
    assert.deepEqual(spec.linux.uidMappings, userns.uids);
    assert.deepEqual(spec.linux.gidMappings, userns.gids);
    assert.equal('uidMappings' in buildInfraSpec(infra(), infraResolved).linux, false);
  });

  it('shares host namespaces as asked, with no hostname on the host network', () => {
    const spec = buildInfraSpec(
      infra({ sysctls: {} }, { hostNetwork: true, netnsPath: undefined, hostPid: true, hostIpc: true }),
      infraResolved,
    );
    assert.deepEqual(spec.linux.namespaces, [{ type: 'mount' }]);
    assert.equal(spec.hostname, undefined);
    assert.deepEqual(spec.mounts.find((m) => m.destination === '/dev/shm')?.source, '/dev/shm');
  });

  it('writes the namespaced sysctls, normalized, and refuses the others', () => {
    const spec = buildInfraSpec(
      infra({ sysctls: { 'kernel.shm_rmid_forced': '1', 'net/ipv4/ip_forward': '1' } }),
      infraResolved,
    );
    assert.deepEqual(spec.linux.sysctl, { 'kernel.shm_rmid_forced': '1', 'net.ipv4.ip_forward': '1' });
    assert.equal('sysctl' in buildInfraSpec(infra({ sysctls: {} }), infraResolved).linux, false);
    assert.throws(
      () => buildInfraSpec(infra({ sysctls: { 'vm.swappiness': '1' } }), infraResolved),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.field === 'config.linux.sysctls["vm.swappiness"]',
    );
    assert.throws(
      () => buildInfraSpec(infra({}, { hostNetwork: true, netnsPath: undefined }), infraResolved),
      /ip_unprivileged_port_start.*host network/,
    );
  });

  it('needs a pinned netns without host network', () => {
    assert.throws(() => buildInfraSpec(infra({}, { netnsPath: undefined }), infraResolved));
  });

  it('mounts the defaults, then shm and resolv.conf read-only', () => {
    const spec = buildInfraSpec(infra(), infraResolved);
    assert.deepEqual(
      spec.mounts.map((m) => m.destination),
      ['/proc', '/dev', '/dev/pts', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/dev/shm', '/etc/resolv.conf'],
    );
    assert.deepEqual(spec.mounts.at(-2), {
      destination: '/dev/shm',
      type: 'bind',
      source: '/run/crisp/sandboxes/s/shm',
      options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'],
    });
  });

  it('uses the systemd cgroup driver', () => {
    const spec = buildInfraSpec(infra({}, { cgroupDriver: 'systemd', cgroupParent: '' }), infraResolved);
    assert.equal(spec.linux.cgroupsPath, `system.slice:crisp:${SID}`);
  });

  it('applies the oom floor', () => {
    assert.equal(
      buildInfraSpec(infra(), { ...infraResolved, oomScoreAdjFloor: -500 }).process.oomScoreAdj,
      -500,
    );
    assert.equal(buildInfraSpec(infra({ oomScoreAdj: -100 }), infraResolved).process.oomScoreAdj, -100);
  });

  it('annotates the sandbox', () => {
    const spec = buildInfraSpec(
      infra({ resources: { cpuShares: 1024, memoryLimitBytes: 1 << 30 } }),
      infraResolved,
    );
    assert.deepEqual(spec.annotations, {
      'example.test/pod': 'yes',
      'io.kubernetes.cri.container-type': 'sandbox',
      'io.kubernetes.cri.sandbox-id': SID,
      'io.kubernetes.cri.sandbox-name': 'web-0',
      'io.kubernetes.cri.sandbox-namespace': 'default',
      'io.kubernetes.cri.sandbox-uid': 'uid-1',
      'io.kubernetes.cri.sandbox-log-directory': '/var/log/pods/default_web-0_uid-1',
      'io.kubernetes.cri.sandbox-cpu-shares': '1024',
      'io.kubernetes.cri.sandbox-memory': '1073741824',
    });
  });

  it('needs a pause command', () => {
    assert.throws(
      () =>
        buildInfraSpec(
          infra({ image: { id: 'x', ref: 'p', run: run({ entrypoint: [], cmd: [] }) } }),
          infraResolved,
        ),
      FailedPreconditionError,
    );
  });
});

describe('sysctls', () => {
  it('knows which namespace a sysctl belongs to', () => {
    for (const n of [
      'kernel.shmmax',
      'kernel.shm_rmid_forced',
      'kernel.msgmax',
      'kernel.sem',
      'fs.mqueue.msg_max',
    ]) {
      assert.equal(sysctlNamespace(n), 'ipc', n);
    }
    assert.equal(sysctlNamespace('net.ipv4.ip_local_port_range'), 'net');
    for (const n of [
      'vm.swappiness',
      'kernel.pid_max',
      'kernel.semx',
      'fs.file-max',
      'kernel.hostname',
      'netx.y',
    ]) {
      assert.equal(sysctlNamespace(n), undefined, n);
    }
  });

  it('normalizes slash-separated names as Kubernetes does', () => {
    assert.equal(normalizeSysctlName('net.ipv4.ip_forward'), 'net.ipv4.ip_forward');
    assert.equal(normalizeSysctlName('net/ipv4/ip_forward'), 'net.ipv4.ip_forward');
    assert.equal(normalizeSysctlName('net/ipv4/conf/eno2.100/rp_filter'), 'net.ipv4.conf.eno2/100.rp_filter');
    assert.equal(normalizeSysctlName('net.ipv4.conf.eno2/100.rp_filter'), 'net.ipv4.conf.eno2/100.rp_filter');
  });

  it('refuses what is not namespaced, malformed or shared with the node, naming it', () => {
    const refused = (sysctls: Record<string, string>, field: string, pattern: RegExp, host = {}) => {
      assert.throws(
        () => podSysctls(sysctls, { hostNetwork: false, hostIpc: false, ...host }),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === `config.linux.sysctls[${JSON.stringify(field)}]` &&
          pattern.test(err.message),
      );
    };
    refused({ 'vm.swappiness': '10' }, 'vm.swappiness', /"vm\.swappiness" is unknown or not namespaced/);
    refused({ 'kernel.nonexistent': '1' }, 'kernel.nonexistent', /not namespaced/);
    refused({ 'net..ipv4': '1' }, 'net..ipv4', /not a sysctl name/);
    refused({ 'net.ipv4.x/../y': '1' }, 'net.ipv4.x/../y', /not a sysctl name/);
    refused({ 'net.core.somaxconn': '1\n2' }, 'net.core.somaxconn', /newline/);
    refused({ 'net.ipv4.ip_forward': '1' }, 'net.ipv4.ip_forward', /host network/, { hostNetwork: true });
    refused({ 'kernel.shmmax': '1' }, 'kernel.shmmax', /host IPC/, { hostIpc: true });
    assert.deepEqual(podSysctls({ 'kernel.shmmax': '1' }, { hostNetwork: true, hostIpc: false }), {
      'kernel.shmmax': '1',
    });
    assert.deepEqual(podSysctls({ 'net/core/somaxconn': '1024' }, { hostNetwork: false, hostIpc: true }), {
      'net.core.somaxconn': '1024',
    });
  });

  it('finds the sysctls the node lacks, but not per-interface ones', async () => {
    assert.deepEqual(
      await missingSysctls([
        'net.ipv4.ip_local_port_range',
        'kernel.shm_rmid_forced',
        'net.ipv4.no_such_thing',
        'net.ipv4.conf.pod0.rp_filter',
        'net.ipv6.neigh.pod0.retrans_time_ms',
      ]),
      ['net.ipv4.no_such_thing'],
    );
  });
});

describe('apparmorProfile', () => {
  const localhost = {
    profileType: 'localhost' as const,
    name: 'web',
    field: 'config.linux.security_context.apparmor',
  };
  it('applies a named profile where the node has AppArmor', () => {
    assert.equal(apparmorProfile(localhost, false, true), 'web');
  });
  it('refuses a named profile where the node has none, naming it', () => {
    assert.throws(
      () => apparmorProfile(localhost, false, false),
      (err) => {
        assert.ok(err instanceof FailedPreconditionError);
        assert.match(err.message, /"web".*not enabled on this node/);
        return true;
      },
    );
  });
  it('runs privileged, unconfined and runtime-default containers without a named profile', () => {
    assert.equal(apparmorProfile(localhost, true, false), undefined);
    assert.equal(apparmorProfile({ profileType: 'unconfined', field: 'f' }, false, false), undefined);
    assert.equal(apparmorProfile({ profileType: 'runtime-default', field: 'f' }, false, true), undefined);
    assert.equal(apparmorProfile(undefined, false, true), undefined);
  });
});
