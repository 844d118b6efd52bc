/**
 * The OCI runtime spec (config.json) of an app container and of a pod's infra (pause) container,
 * built by pure functions from domain inputs (spec-types.ts) and facts the caller resolved with I/O
 * beforehand (the mounted rootfs, the user from its /etc/passwd, the host's OOM floor).
 *
 * What goes where follows /work/shared/notes/oci-runtime-spec-for-cri.md, which records what
 * containerd 1.7 writes; the places crisp chooses differently say so where they happen.
 *
 * seccomp: the caller resolves the profile (seccomp.ts, which reads files) and passes it in
 * the resolved facts; it becomes `linux.seccomp` as given.
 *
 * Not emitted yet: SELinux labels, user namespaces, rlimits (none: processes inherit the
 * runtime's, as with containerd's CRI). Device nodes are resolved by devices.ts.
 *
 * Two small async helpers read host facts for the callers (hostCapabilities, missingSysctls);
 * the builders themselves do no I/O.
 */
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { FailedPreconditionError, InternalError, InvalidArgumentError } from '../errors.js';
import { mergeEnv, resolveArgs } from './args.js';
import type {
  ContainerResourcesInput,
  ContainerSecurityInput,
  ContainerSpecInput,
  ContainerSpecResolved,
  InfraPodContext,
  InfraSpecInput,
  InfraSpecResolved,
  MountInput,
  OciDevice,
  OciDeviceCgroup,
  OciMount,
  OciNamespace,
  OciResources,
  OciSpec,
  PodContext,
  ProcessUser,
  ResourceFacts,
} from './spec-types.js';

/** What runc 1.1.5 (the runtime crisp drives) reports as its spec version. */
export const OCI_VERSION = '1.0.2-dev';

/** containerd's (Docker's) default capability set, in containerd's order. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/**
 * Every Linux capability crisp knows (0..40, kernel 5.9+), in number order: what `privileged` and
 * `add: [ALL]` grant. runc skips, with a warning, any the running kernel lacks.
 */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** Masked when the request gives no list (the older kubelet defaults). */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
];

/** Read-only when the request gives no list (the older kubelet defaults). */
export const DEFAULT_READONLY_PATHS: readonly string[] = [
  '/proc/asound',
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
];

/** containerd's oom_score_adj for the pause process. */
export const DEFAULT_INFRA_OOM_SCORE_ADJ = -998;
/** containerd's cpu.shares for the pause container. */
export const INFRA_CPU_SHARES = 2;

/** The annotations containerd's CRI plugin writes; consumers (Kata, gVisor, NRI) key off them. */
export const ANNOTATIONS = {
  containerType: 'io.kubernetes.cri.container-type',
  sandboxId: 'io.kubernetes.cri.sandbox-id',
  sandboxName: 'io.kubernetes.cri.sandbox-name',
  sandboxNamespace: 'io.kubernetes.cri.sandbox-namespace',
  sandboxUid: 'io.kubernetes.cri.sandbox-uid',
  sandboxLogDirectory: 'io.kubernetes.cri.sandbox-log-directory',
  sandboxCpuPeriod: 'io.kubernetes.cri.sandbox-cpu-period',
  sandboxCpuQuota: 'io.kubernetes.cri.sandbox-cpu-quota',
  sandboxCpuShares: 'io.kubernetes.cri.sandbox-cpu-shares',
  sandboxMemory: 'io.kubernetes.cri.sandbox-memory',
  containerName: 'io.kubernetes.cri.container-name',
  imageName: 'io.kubernetes.cri.image-name',
} as const;

const SC = 'config.linux.security_context';
const RES = 'config.linux.resources';

// --- capabilities --------------------------------------------------------------------------------

const KNOWN_CAPABILITIES: ReadonlySet<string> = new Set(ALL_CAPABILITIES);

/** `CAP_<NAME>` (or ALL) for a name in any case, with or without CAP_; undefined if Linux has none such. */
function knownCapabilityName(raw: string): string | undefined {
  const upper = raw.trim().toUpperCase();
  if (upper === 'ALL') return upper;
  const name = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  return KNOWN_CAPABILITIES.has(name) ? name : undefined;
}

function capabilityName(raw: string, field: string): string {
  const name = knownCapabilityName(raw);
  if (name === undefined) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(raw)} is not a Linux capability (names are like NET_ADMIN or CAP_NET_ADMIN, or ALL)`,
    );
  }
  return name;
}

/**
 * The capabilities a mask (a `Cap*:` line of /proc/<pid>/status, as a number) holds, in number
 * order; bits beyond ALL_CAPABILITIES are ignored.
 */
export function capabilitiesFromMask(mask: bigint): string[] {
  return ALL_CAPABILITIES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

/**
 * The capabilities crisp's own process may pass on: its bounding set (`CapBnd:` of
 * /proc/self/status, or of `statusText`). runc, started by crisp through conmon, cannot give a
 * container a capability outside it ("unable to apply caps: operation not permitted"), which
 * happens on hosts whose root lacks some (nested or restricted machines lack CAP_SYS_RESOURCE).
 * The only I/O in this module: the daemon reads it once and passes it as
 * `availableCapabilities` (containerd likewise grants privileged containers the capabilities
 * it holds itself).
 */
export async function hostCapabilities(statusText?: string): Promise<string[]> {
  const text = statusText ?? (await readFile('/proc/self/status', 'utf8'));
  const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(text)?.[1];
  if (hex === undefined) throw new InternalError('no CapBnd line in /proc/self/status');
  return capabilitiesFromMask(BigInt(`0x${hex}`));
}

/**
 * The capability set (bounding = effective = permitted) for a security context, containerd's way:
 * start from the default 14; `ALL` in add means every capability and `ALL` in drop means none
 * (both applied first, drop after add), then the individual adds, then the individual drops.
 * Names take `CAP_` if they lack it (CRI sends them bare) and any case; an added name that is not
 * a Linux capability is an InvalidArgumentError naming the field and the name (CRI-O refuses it
 * too), a dropped one is ignored. Privileged
 * containers get every capability and add/drop are ignored.
 *
 * `available` (crisp's own bounding set, see hostCapabilities) limits "every capability" (ALL,
 * privileged, the defaults) to what runc can grant; an individual add outside it is a
 * FailedPreconditionError naming it, rather than a runc failure at start. Undefined = all.
 */
export function capabilitySet(
  security: ContainerSecurityInput | undefined,
  available?: readonly string[],
): string[] {
  const grantable = (caps: readonly string[]): string[] =>
    available === undefined ? [...caps] : caps.filter((c) => available.includes(c));
  if (security?.privileged === true) return grantable(ALL_CAPABILITIES);
  const requested = security?.capabilities;
  if (!requested) return grantable(DEFAULT_CAPABILITIES);
  const add = requested.add.map((c, i) => capabilityName(c, `${SC}.capabilities.add_capabilities[${i}]`));
  // Dropping a capability Linux does not have takes nothing away: such a name is ignored, as
  // containerd does (CRI-O, too, refuses only unknown adds).
  const drop = requested.drop.flatMap((c) => knownCapabilityName(c) ?? []);
  let caps = grantable(add.includes('ALL') ? ALL_CAPABILITIES : DEFAULT_CAPABILITIES);
  if (drop.includes('ALL')) caps = [];
  for (const c of add) {
    if (c === 'ALL' || caps.includes(c) || drop.includes(c)) continue;
    if (available !== undefined && !available.includes(c)) {
      throw new FailedPreconditionError(
        `capability ${c.slice(4)} (${SC}.capabilities.add_capabilities) cannot be granted: crisp itself does not hold it on this node`,
      );
    }
    caps.push(c);
  }
  return caps.filter((c) => !drop.includes(c));
}

// --- cgroups -------------------------------------------------------------------------------------

/**
 * linux.cgroupsPath for a container (or the infra container) of a pod:
 * - cgroupfs: `<parent>/crisp-<id>`, or `/crisp/<id>` without a parent;
 * - systemd: `<slice>:crisp:<id>` (runc then makes `crisp-<id>.scope` in that slice), with
 *   `system.slice` without a parent. A parent that is a path takes its last element (as CRI-O
 *   does); one that is not a `.slice` is an InvalidArgumentError.
 */
export function cgroupsPath(driver: 'cgroupfs' | 'systemd', parent: string, id: string): string {
  if (driver === 'systemd') {
    const slice = parent === '' ? 'system.slice' : path.posix.basename(parent);
    if (!slice.endsWith('.slice') || slice.includes(':')) {
      throw new InvalidArgumentError(
        'config.linux.cgroup_parent',
        `${JSON.stringify(parent)} is not a systemd slice: with the systemd cgroup driver the parent must be a slice such as "kubepods-burstable-pod<uid>.slice"`,
      );
    }
    return `${slice}:crisp:${id}`;
  }
  if (parent === '') return `/crisp/${id}`;
  const clean = path.posix.normalize(`/${parent}`).replace(/\/+$/, '');
  return `${clean}/crisp-${id}`;
}

// --- resources -----------------------------------------------------------------------------------

function checkInt(field: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(field, `${value} is out of range (${min}..${max})`);
  }
  return value;
}

/**
 * The device cgroup: deny everything, then allow each device the container was given with its
 * access (runc adds its defaults: /dev/null, zero, full, random, urandom, tty, ptmx, and the
 * console with a terminal). Privileged containers may use any device.
 */
function devicesFor(
  devices: readonly (OciDevice & { access: string })[],
  privileged: boolean,
): OciDeviceCgroup[] {
  if (privileged) return [{ allow: true, access: 'rwm' }];
  return [
    { allow: false, access: 'rwm' },
    ...devices.map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.access })),
  ];
}

/** linux.devices: the resolved device nodes, one per container path (a later one wins). */
function deviceNodes(devices: readonly (OciDevice & { access: string })[]): OciDevice[] {
  const byPath = new Map<string, OciDevice>();
  for (const { access: _access, ...d } of devices) byPath.set(d.path, d);
  return [...byPath.values()];
}

/**
 * The smallest memory limit crisp accepts: runc's init process is charged to the container's
 * cgroup and peaks at about 2.5 MiB here (runc 1.1.5), so runc fails below 3 MiB ("unable to
 * set memory limit ... current usage"). 4 MiB (Docker's old minimum) refuses such limits up
 * front; CRI-O refuses below 12 MiB, containerd checks nothing.
 */
export const MIN_MEMORY_LIMIT_BYTES = 4 * 1024 * 1024;

/** The kernel's CFS bounds, in microseconds: a period of 1 ms..1 s, a quota of at least 1 ms. */
export const CFS_PERIOD_MIN = 1000;
export const CFS_PERIOD_MAX = 1_000_000;
export const CFS_QUOTA_MIN = 1000;

const HUGEPAGE_SIZE = /^[1-9][0-9]*[KMG]B$/;
const UNIFIED_KEY = /^[a-z][a-z0-9_]*\.[a-z0-9_.]+$/;
/** cgroup v1 cpu.shares bounds (kubelet sends 2..262144; v2's cpu.weight is derived from them). */
const CPU_SHARES_MAX = 262_144;

/**
 * The rules for resource values that hold on every node (the kernel's and runc's limits), each
 * refusal naming the field under `prefix`. The CRI layer runs them before anything is created;
 * containerResources() runs them for every engine caller. What depends on the node (its huge
 * page sizes, cgroup v1 or v2, a swap controller) is containerResources()' alone.
 */
export function checkResourceValues(r: ContainerResourcesInput, prefix: string): void {
  if (r.cpuShares) checkInt(`${prefix}.cpu_shares`, r.cpuShares, 0, CPU_SHARES_MAX);
  // -1 = no limit (what kubelet sends for a pod without a CPU limit).
  if (r.cpuQuota && r.cpuQuota !== -1) checkInt(`${prefix}.cpu_quota`, r.cpuQuota, CFS_QUOTA_MIN);
  if (r.cpuPeriod) checkInt(`${prefix}.cpu_period`, r.cpuPeriod, CFS_PERIOD_MIN, CFS_PERIOD_MAX);
  if (r.memoryLimitBytes) {
    if (!Number.isSafeInteger(r.memoryLimitBytes) || r.memoryLimitBytes < MIN_MEMORY_LIMIT_BYTES) {
      throw new InvalidArgumentError(
        `${prefix}.memory_limit_in_bytes`,
        `${r.memoryLimitBytes} is below crisp's minimum of ${MIN_MEMORY_LIMIT_BYTES} bytes (4 MiB): runc cannot start a container in less`,
      );
    }
  }
  if (r.memorySwapLimitBytes) checkInt(`${prefix}.memory_swap_limit_in_bytes`, r.memorySwapLimitBytes, -1);
  if (r.oomScoreAdj) checkInt(`${prefix}.oom_score_adj`, r.oomScoreAdj, -1000, 1000);
  (r.hugepageLimits ?? []).forEach((l, i) => {
    const field = `${prefix}.hugepage_limits[${i}]`;
    if (!HUGEPAGE_SIZE.test(l.pageSize)) {
      throw new InvalidArgumentError(
        `${field}.page_size`,
        `${JSON.stringify(l.pageSize)} is not a huge page size such as "2MB" or "1GB"`,
      );
    }
    checkInt(`${field}.limit`, l.limit, 0);
  });
  for (const [key, value] of Object.entries(r.unified ?? {})) {
    if (!UNIFIED_KEY.test(key)) {
      throw new InvalidArgumentError(
        `${prefix}.unified[${JSON.stringify(key)}]`,
        'is not a cgroup v2 file name',
      );
    }
    if (value.includes('\n')) {
      throw new InvalidArgumentError(
        `${prefix}.unified[${JSON.stringify(key)}]`,
        `the value ${JSON.stringify(value)} has a newline`,
      );
    }
  }
}

/**
 * Huge page limits: every page size must be one the kernel has (kubelet sends all of them, 0 for
 * the unrequested ones). Without a hugetlb controller they are dropped (tolerated, the default) or
 * refused.
 */
function hugepageLimits(
  limits: ContainerResourcesInput['hugepageLimits'],
  facts: ResourceFacts,
  prefix: string,
): NonNullable<OciResources['hugepageLimits']> {
  const out = (limits ?? []).map((l, i) => {
    const field = `${prefix}.hugepage_limits[${i}]`;
    const known = facts.hugepageSizes;
    if (!HUGEPAGE_SIZE.test(l.pageSize) || (known !== undefined && !known.includes(l.pageSize))) {
      throw new InvalidArgumentError(
        `${field}.page_size`,
        `${JSON.stringify(l.pageSize)} is not a huge page size of this node (it has ${known?.join(', ') || 'none'})`,
      );
    }
    return { pageSize: l.pageSize, limit: checkInt(`${field}.limit`, l.limit, 0) };
  });
  if (out.length === 0 || facts.hugetlbControllerAvailable !== false) return out;
  if (facts.tolerateMissingHugetlbController === false) {
    throw new FailedPreconditionError(
      `${prefix}.hugepage_limits cannot be applied: this node has no hugetlb cgroup controller for runc (set tolerate_missing_hugetlb_controller = true in crisp.toml to ignore them)`,
    );
  }
  return [];
}

/** cgroup v2 files: only on a v2 node (their names and values are checked by checkResourceValues). */
function unifiedResources(
  unified: ContainerResourcesInput['unified'],
  facts: ResourceFacts,
  prefix: string,
): Record<string, string> {
  const entries = Object.entries(unified ?? {});
  if (entries.length === 0) return {};
  if (facts.cgroupV2 !== true) {
    throw new InvalidArgumentError(
      `${prefix}.unified`,
      `${entries.map(([k]) => JSON.stringify(k)).join(', ')}: unified holds cgroup v2 settings and this node runs cgroup v1`,
    );
  }
  return Object.fromEntries(entries);
}

/**
 * linux.resources for an app container (at create, and the live part at update): CPU, memory,
 * huge pages, unified, and crisp's pids_limit, after checking each against what the kernel and
 * runc can apply. Errors name the field under `prefix` (the request's resources message).
 */
export function containerResources(
  r: ContainerResourcesInput | undefined,
  devices: OciDeviceCgroup[],
  facts: ResourceFacts,
  prefix: string = RES,
): OciResources {
  const swapControllerAvailable = facts.swapControllerAvailable === true;
  // What this node can do first (its messages name what it has), then the rules of every node.
  const hugepages = hugepageLimits(r?.hugepageLimits, facts, prefix);
  const unified = unifiedResources(r?.unified, facts, prefix);
  checkResourceValues(r ?? {}, prefix);
  const out: OciResources = { devices };
  const cpu: NonNullable<OciResources['cpu']> = {};
  if (r?.cpuShares) cpu.shares = r.cpuShares;
  if (r?.cpuQuota) cpu.quota = r.cpuQuota;
  if (r?.cpuPeriod) cpu.period = r.cpuPeriod;
  if (r?.cpusetCpus) cpu.cpus = r.cpusetCpus;
  if (r?.cpusetMems) cpu.mems = r.cpusetMems;
  if (Object.keys(cpu).length > 0) out.cpu = cpu;
  const memory: NonNullable<OciResources['memory']> = {};
  if (r?.memoryLimitBytes) {
    memory.limit = r.memoryLimitBytes;
    // containerd: swap equal to the limit, so a container does not swap unless asked to.
    if (swapControllerAvailable) memory.swap = memory.limit;
  }
  if (r?.memorySwapLimitBytes && swapControllerAvailable) memory.swap = r.memorySwapLimitBytes;
  if (Object.keys(memory).length > 0) out.memory = memory;
  if (facts.pidsLimit !== undefined && facts.pidsLimit > 0) out.pids = { limit: facts.pidsLimit };
  if (hugepages.length > 0) out.hugepageLimits = hugepages;
  if (Object.keys(unified).length > 0) out.unified = unified;
  return out;
}

/**
 * The oom_score_adj to write: the requested one (0 if unset: leaving it out would let the container
 * inherit the daemon's own score), raised to `floor` when it is below it.
 */
export function effectiveOomScoreAdj(requested: number | undefined, floor: number | undefined): number {
  const adj = checkInt(`${RES}.oom_score_adj`, requested ?? 0, -1000, 1000);
  return floor !== undefined && adj < floor ? floor : adj;
}

// --- mounts --------------------------------------------------------------------------------------

function cleanPath(p: string): string {
  const clean = path.posix.normalize(p);
  return clean.length > 1 ? clean.replace(/\/+$/, '') : clean;
}

/** The runtime's base mounts, containerd's set without /run; /dev/shm is always replaced in practice. */
export function defaultMounts(privileged: boolean): OciMount[] {
  const roUnlessPrivileged = privileged ? [] : ['ro'];
  return [
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
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/sys',
      type: 'sysfs',
      source: 'sysfs',
      options: ['nosuid', 'noexec', 'nodev', ...roUnlessPrivileged],
    },
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', ...roUnlessPrivileged],
    },
  ];
}

/** The default mounts no supplied mount replaces (all under /dev go if /dev itself is supplied). */
function keptDefaults(defaults: OciMount[], supplied: ReadonlySet<string>): OciMount[] {
  return defaults.filter(
    (m) => !supplied.has(m.destination) && !(supplied.has('/dev') && m.destination.startsWith('/dev/')),
  );
}

const PROPAGATION = {
  private: 'rprivate',
  'host-to-container': 'rslave',
  bidirectional: 'rshared',
} as const;

/**
 * The app container's mounts, containerd's order: the default mounts a supplied one does not
 * replace, then the CRI mounts plus the pod files the CRI mounts do not cover (/etc/hostname,
 * /etc/hosts, /etc/resolv.conf, /dev/shm), stably sorted by path depth so a parent is mounted
 * before what lies under it. rootfsPropagation is rshared if any mount is bidirectional, else
 * rslave if any is host-to-container, else left to runc (rprivate).
 */
export function containerMounts(
  input: ContainerSpecInput,
  pod: PodContext,
): { mounts: OciMount[]; rootfsPropagation?: 'rslave' | 'rshared' } {
  const security = input.linux.securityContext;
  const privileged = security?.privileged === true;
  const podFilesReadonly = security?.readonlyRootfs === true;

  const supplied: MountInput[] = input.mounts.map((m, i) => {
    for (const [key, field] of [
      ['containerPath', 'container_path'],
      ['hostPath', 'host_path'],
    ] as const) {
      if (!m[key].startsWith('/')) {
        throw new InvalidArgumentError(
          `config.mounts[${i}].${field}`,
          `${JSON.stringify(m[key])} is not an absolute path`,
        );
      }
    }
    return { ...m, containerPath: cleanPath(m.containerPath), hostPath: cleanPath(m.hostPath) };
  });
  const criTargets = new Set(supplied.map((m) => m.containerPath));

  const podFiles = [
    { containerPath: '/etc/hostname', hostPath: pod.hostnamePath, readonly: podFilesReadonly },
    { containerPath: '/etc/hosts', hostPath: pod.hostsPath, readonly: podFilesReadonly },
    { containerPath: '/etc/resolv.conf', hostPath: pod.resolvConfPath, readonly: podFilesReadonly },
    { containerPath: '/dev/shm', hostPath: pod.hostIpc ? '/dev/shm' : pod.shmPath, readonly: false },
  ]
    .filter((m) => m.hostPath !== '' && !criTargets.has(m.containerPath))
    .map((m): MountInput => ({ ...m, propagation: 'private' }));

  const binds = [...supplied, ...podFiles]
    .map((m, order) => ({ m, order, depth: m.containerPath.split('/').length }))
    .sort((a, b) => a.depth - b.depth || a.order - b.order)
    .map(({ m }) => m);

  let rootfsPropagation: 'rslave' | 'rshared' | undefined;
  for (const m of binds) {
    if (m.propagation === 'bidirectional') rootfsPropagation = 'rshared';
    else if (m.propagation === 'host-to-container' && rootfsPropagation === undefined) {
      rootfsPropagation = 'rslave';
    }
  }

  const mounts = [
    ...keptDefaults(defaultMounts(privileged), new Set(binds.map((m) => m.containerPath))),
    ...binds.map((m): OciMount => ({
      destination: m.containerPath,
      type: 'bind',
      source: m.hostPath,
      options: ['rbind', PROPAGATION[m.propagation], m.readonly ? 'ro' : 'rw', ...(m.extraOptions ?? [])],
    })),
  ];
  return rootfsPropagation === undefined ? { mounts } : { mounts, rootfsPropagation };
}

/** The infra container's mounts: the defaults, then the pod's shm and resolv.conf, read-only. */
export function infraMounts(pod: InfraPodContext): OciMount[] {
  const options = ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'];
  const binds: OciMount[] = [
    { destination: '/dev/shm', type: 'bind', source: pod.hostIpc ? '/dev/shm' : pod.shmPath, options },
    { destination: '/etc/resolv.conf', type: 'bind', source: pod.resolvConfPath, options: [...options] },
  ].filter((m) => m.source !== '');
  return [...keptDefaults(defaultMounts(false), new Set(binds.map((m) => m.destination))), ...binds];
}

// --- namespaces ----------------------------------------------------------------------------------

/**
 * The app container's namespaces. It joins the pod's network through the pinned netns path when
 * there is one (CRI-O's way: it is the handle CNI configured, and it cannot be confused with
 * another process's namespaces if the pause process dies and its pid is reused), else through the
 * infra process; ipc and uts through `/proc/<infraPid>/ns/*` (containerd's way: nothing else pins
 * them). A namespace the pod shares with the host is simply not listed (the same result as
 * joining the host-namespaced pause process, without depending on it). pid follows the
 * container's NamespaceOption; mount is always new; cgroup is new on cgroup v2 unless privileged.
 */
export function containerNamespaces(
  input: ContainerSpecInput,
  pod: PodContext,
  resolved: Pick<ContainerSpecResolved, 'targetPid' | 'cgroupV2'>,
): OciNamespace[] {
  const infra = (ns: string): string => {
    if (!Number.isSafeInteger(pod.infraPid) || pod.infraPid <= 0) {
      throw new FailedPreconditionError(
        `sandbox ${JSON.stringify(pod.sandboxId)} has no running infra process whose namespaces container ${JSON.stringify(input.name)} could join`,
      );
    }
    return `/proc/${pod.infraPid}/ns/${ns}`;
  };
  const security = input.linux.securityContext;
  const namespaces: OciNamespace[] = [];
  const pidMode = security?.namespaces?.pid ?? 'container';
  switch (pidMode) {
    case 'container':
      namespaces.push({ type: 'pid' });
      break;
    case 'pod':
      namespaces.push({ type: 'pid', path: infra('pid') });
      break;
    case 'node':
      // The node's namespace: listed as nothing, as containerd and CRI-O do, also in a pod that
      // does not share it (kubelet sends NODE only for a hostPID pod, to the pod and all its
      // containers alike). A pod in its own user namespace cannot join it: the kernel refuses.
      if (pod.userns) {
        throw new InvalidArgumentError(
          `${SC}.namespace_options.pid`,
          `NODE: container ${JSON.stringify(input.name)} is in pod ${JSON.stringify(pod.sandboxName)}'s user namespace, from which the node's PID namespace cannot be joined`,
        );
      }
      break;
    case 'target': {
      const pid = resolved.targetPid;
      if (pid === undefined || !Number.isSafeInteger(pid) || pid <= 0) {
        throw new FailedPreconditionError(
          `target container ${JSON.stringify(security?.namespaces?.targetId ?? '')} has no running process whose pid namespace container ${JSON.stringify(input.name)} could join`,
        );
      }
      namespaces.push({ type: 'pid', path: `/proc/${pid}/ns/pid` });
      break;
    }
  }
  // runc joins the user namespace first; the network namespace is then the one the infra
  // container made inside it (pinned), which the namespace's root may join.
  if (pod.userns) namespaces.unshift({ type: 'user', path: infra('user') });
  if (!pod.hostNetwork) namespaces.push({ type: 'network', path: pod.netnsPath ?? infra('net') });
  if (!pod.hostIpc) namespaces.push({ type: 'ipc', path: infra('ipc') });
  if (!pod.hostNetwork) namespaces.push({ type: 'uts', path: infra('uts') });
  namespaces.push({ type: 'mount' });
  if (resolved.cgroupV2 === true && security?.privileged !== true) namespaces.push({ type: 'cgroup' });
  return namespaces;
}

/**
 * The infra container's namespaces: the pinned network namespace (none listed for host network,
 * and then no UTS namespace either), new pid/ipc/uts unless shared with the node, a new mount;
 * with a pod user namespace, a new user namespace and a new network namespace in it.
 */
export function infraNamespaces(pod: InfraPodContext): OciNamespace[] {
  const namespaces: OciNamespace[] = [];
  if (pod.userns) namespaces.push({ type: 'user' });
  if (!pod.hostPid) namespaces.push({ type: 'pid' });
  if (pod.userns) {
    // A new network namespace owned by the new user namespace (crisp pins it once the infra
    // process exists): one made beforehand would belong to the host's user namespace, and the
    // pod's containers, which join the user namespace first, could not join it.
    namespaces.push({ type: 'network' });
  } else if (!pod.hostNetwork) {
    if (pod.netnsPath === undefined || pod.netnsPath === '') {
      throw new InternalError(`sandbox ${JSON.stringify(pod.sandboxId)} has no pinned network namespace`);
    }
    namespaces.push({ type: 'network', path: pod.netnsPath });
  }
  if (!pod.hostIpc) namespaces.push({ type: 'ipc' });
  if (!pod.hostNetwork) namespaces.push({ type: 'uts' });
  namespaces.push({ type: 'mount' });
  return namespaces;
}

/**
 * The pod's id maps on a spec that creates or joins its user namespace (runc 1.1 wants them
 * when joining too).
 */
function setIdMappings(spec: OciSpec, pod: InfraPodContext): void {
  if (!pod.userns) return;
  spec.linux.uidMappings = pod.userns.uids.map((m) => ({ ...m }));
  spec.linux.gidMappings = pod.userns.gids.map((m) => ({ ...m }));
}

// --- sysctls ------------------------------------------------------------------------------------

/** What a sysctl is namespaced by (kubelet's pkg/kubelet/sysctl/namespace.go). */
export type SysctlNamespace = 'ipc' | 'net';

/**
 * The namespace a sysctl belongs to, or undefined for one that is not namespaced (and would
 * change the whole node): kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* follow the IPC
 * namespace, net.* the network namespace; the same list kubelet and runc use.
 */
export function sysctlNamespace(name: string): SysctlNamespace | undefined {
  if (name === 'kernel.sem' || /^kernel\.(shm|msg)/.test(name) || name.startsWith('fs.mqueue.')) return 'ipc';
  if (name.startsWith('net.')) return 'net';
  return undefined;
}

/**
 * A sysctl name in its dotted form. Kubernetes also accepts `/` as the separator: when the first
 * separator is a `/`, dots and slashes swap (`net/ipv4/conf/eth0.100/rp_filter` →
 * `net.ipv4.conf.eth0/100.rp_filter`, the form runc writes to /proc/sys).
 */
export function normalizeSysctlName(name: string): string {
  const first = name.search(/[./]/);
  if (first < 0 || name[first] === '.') return name;
  return name.replace(/[./]/g, (c) => (c === '.' ? '/' : '.'));
}

const SYSCTL_SEGMENT = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;

/**
 * The pod's sysctls, names normalized, or an InvalidArgumentError naming the first bad one
 * (field `config.linux.sysctls["<name>"]`): a malformed name, one that is not namespaced
 * (vm.*, kernel.* other than the IPC ones, fs.* other than fs.mqueue.*: they would change the
 * node), or one of a namespace the pod shares with the node (net.* with host network, IPC ones
 * with host IPC). runc refuses all of these too, but only after the pod is half made and with a
 * message that does not name the field.
 */
export function podSysctls(
  sysctls: Readonly<Record<string, string>>,
  pod: { hostNetwork: boolean; hostIpc: boolean },
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [raw, value] of Object.entries(sysctls)) {
    const name = normalizeSysctlName(raw);
    const bad = (reason: string): InvalidArgumentError =>
      new InvalidArgumentError(`config.linux.sysctls[${JSON.stringify(raw)}]`, reason);
    if (!name.split('.').every((segment) => SYSCTL_SEGMENT.test(segment))) {
      throw bad(`${JSON.stringify(raw)} is not a sysctl name`);
    }
    if (value.includes('\n')) throw bad(`the value ${JSON.stringify(value)} has a newline`);
    const ns = sysctlNamespace(name);
    if (ns === undefined) {
      throw bad(
        `${JSON.stringify(name)} is unknown or not namespaced: a pod may only set kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* and net.* sysctls`,
      );
    }
    if (ns === 'net' && pod.hostNetwork) {
      throw bad(`${JSON.stringify(name)} would change the node: the pod uses the host network`);
    }
    if (ns === 'ipc' && pod.hostIpc) {
      throw bad(`${JSON.stringify(name)} would change the node: the pod uses the host IPC namespace`);
    }
    out[name] = value;
  }
  return out;
}

/**
 * Which of these (normalized) sysctls the node's kernel does not have, looked up in `procSys`
 * (the host's /proc/sys): a typo there would otherwise fail in runc after the pod is half made.
 * Per-interface settings (net.ipv4.conf.<if>.*, net.ipv6.conf.<if>.*, net.ipv4.neigh.<if>.*,
 * net.ipv6.neigh.<if>.*) are not checked: the pod's interfaces exist only in its own namespace.
 * A sysctl the host has but a new namespace lacks (e.g. net.core.rmem_max, init-namespace only)
 * still fails in runc. I/O, like hostCapabilities.
 */
export async function missingSysctls(names: readonly string[], procSys = '/proc/sys'): Promise<string[]> {
  const checked = names.filter((n) => !/^net\.ipv[46]\.(conf|neigh)\./.test(n));
  const missing = await Promise.all(
    checked.map(async (n) => {
      try {
        await access(path.join(procSys, ...n.split('.')));
        return undefined;
      } catch {
        return n;
      }
    }),
  );
  return missing.filter((n): n is string => n !== undefined);
}

// --- the specs -----------------------------------------------------------------------------------

/**
 * A host fact the builders take on top of spec-types.ts's resolved facts (it belongs in
 * InfraSpecResolved there; declared here until that file gains it).
 */
export interface CapabilityFacts {
  /**
   * The capabilities crisp can pass on (hostCapabilities()); undefined = every one. ALL,
   * privileged and the defaults are cut down to them; an explicit add of another one fails.
   */
  availableCapabilities?: readonly string[];
}

export type ContainerSpecFacts = ContainerSpecResolved & CapabilityFacts;
export type InfraSpecFacts = InfraSpecResolved & CapabilityFacts;

function ociUser(user: ProcessUser): OciSpec['process']['user'] {
  return { uid: user.uid, gid: user.gid, additionalGids: [...user.additionalGids] };
}

function workingDirFor(requested: string, image: string): string {
  if (requested !== '') {
    if (!requested.startsWith('/')) {
      throw new InvalidArgumentError(
        'config.working_dir',
        `${JSON.stringify(requested)} is not an absolute path`,
      );
    }
    return cleanPath(requested);
  }
  return image === '' ? '/' : cleanPath(`/${image}`);
}

/** config.json for an app container of the pod `pod`. */
export function buildContainerSpec(
  input: ContainerSpecInput,
  pod: PodContext,
  resolved: ContainerSpecFacts,
): OciSpec {
  const security = input.linux.securityContext;
  const privileged = security?.privileged === true;
  if (privileged && !pod.privileged) {
    throw new InvalidArgumentError(
      `${SC}.privileged`,
      `container ${JSON.stringify(input.name)} is privileged but its pod ${JSON.stringify(pod.sandboxName)} is not (set the pod's security_context.privileged)`,
    );
  }
  const { mounts, rootfsPropagation } = containerMounts(input, pod);
  const caps = capabilitySet(security, resolved.availableCapabilities);
  const spec: OciSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: input.tty,
      user: ociUser(resolved.user),
      args: resolveArgs(input.command, input.args, input.image.run),
      env: mergeEnv(input.image.run.env, input.envs, pod.hostname),
      cwd: workingDirFor(input.workingDir, input.image.run.workingDir),
      capabilities: { bounding: caps, effective: [...caps], permitted: [...caps] },
      noNewPrivileges: security?.noNewPrivs === true,
      oomScoreAdj: effectiveOomScoreAdj(input.linux.resources?.oomScoreAdj, resolved.oomScoreAdjFloor),
    },
    root: { path: resolved.rootfsPath, readonly: security?.readonlyRootfs === true },
    mounts,
    annotations: {
      ...input.annotations,
      [ANNOTATIONS.containerType]: 'container',
      [ANNOTATIONS.sandboxId]: pod.sandboxId,
      [ANNOTATIONS.sandboxName]: pod.sandboxName,
      [ANNOTATIONS.sandboxNamespace]: pod.sandboxNamespace,
      [ANNOTATIONS.sandboxUid]: pod.sandboxUid,
      [ANNOTATIONS.containerName]: input.name,
      [ANNOTATIONS.imageName]: input.image.ref,
    },
    linux: {
      namespaces: containerNamespaces(input, pod, resolved),
      resources: containerResources(
        input.linux.resources,
        devicesFor(resolved.devices ?? [], privileged),
        resolved,
      ),
      cgroupsPath: cgroupsPath(pod.cgroupDriver, pod.cgroupParent, input.id),
      maskedPaths: privileged ? [] : [...(security?.maskedPaths ?? DEFAULT_MASKED_PATHS)],
      readonlyPaths: privileged ? [] : [...(security?.readonlyPaths ?? DEFAULT_READONLY_PATHS)],
    },
  };
  if (rootfsPropagation !== undefined) spec.linux.rootfsPropagation = rootfsPropagation;
  setIdMappings(spec, pod);
  if (resolved.devices !== undefined && resolved.devices.length > 0) {
    spec.linux.devices = deviceNodes(resolved.devices);
  }
  if (resolved.seccomp !== undefined && !privileged) spec.linux.seccomp = resolved.seccomp;
  const apparmor = apparmorProfile(security?.apparmor, privileged, resolved.apparmorEnabled === true);
  if (apparmor !== undefined) spec.process.apparmorProfile = apparmor;
  return spec;
}

/**
 * The AppArmor profile to run under. Privileged and unconfined containers get none. On a node
 * without AppArmor the runtime default means none too (there is nothing to confine with), but a
 * named profile cannot be honoured: that is refused rather than silently dropped. With AppArmor,
 * a named profile (loaded on the node by the operator) is applied; crisp ships no default
 * profile of its own yet, so runtime-default runs unconfined there as well.
 */
export function apparmorProfile(
  input: ContainerSecurityInput['apparmor'],
  privileged: boolean,
  enabled: boolean,
): string | undefined {
  if (input === undefined || privileged || input.profileType !== 'localhost') return undefined;
  const name = input.name ?? '';
  if (name === '')
    throw new InvalidArgumentError(input.field, 'a localhost AppArmor profile needs a profile name');
  if (!enabled) {
    throw new FailedPreconditionError(
      `AppArmor profile "${name}" (${input.field}) cannot be applied: AppArmor is not enabled on this node`,
    );
  }
  return name;
}

/**
 * config.json for a pod's infra (pause) container: the pause image's Entrypoint + Cmd, a
 * read-only root, the pod's hostname, sysctls (checked again by podSysctls) and namespaces,
 * cpu.shares 2 and oom_score_adj -998 (containerd's), default capabilities and masked paths, and
 * no_new_privs (the pause process never needs to gain privileges; containerd leaves it off).
 */
export function buildInfraSpec(input: InfraSpecInput, resolved: InfraSpecFacts): OciSpec {
  const { pod } = input;
  let args: string[];
  try {
    args = resolveArgs([], [], input.image.run);
  } catch (err) {
    throw new FailedPreconditionError(
      `pause image ${JSON.stringify(input.image.ref)} has no entrypoint or cmd`,
      { cause: err },
    );
  }
  const annotations: Record<string, string> = {
    ...input.annotations,
    [ANNOTATIONS.containerType]: 'sandbox',
    [ANNOTATIONS.sandboxId]: pod.sandboxId,
    [ANNOTATIONS.sandboxName]: pod.sandboxName,
    [ANNOTATIONS.sandboxNamespace]: pod.sandboxNamespace,
    [ANNOTATIONS.sandboxUid]: pod.sandboxUid,
    [ANNOTATIONS.sandboxLogDirectory]: pod.logDirectory,
  };
  const r = input.resources;
  if (r?.cpuPeriod !== undefined) annotations[ANNOTATIONS.sandboxCpuPeriod] = String(r.cpuPeriod);
  if (r?.cpuQuota !== undefined) annotations[ANNOTATIONS.sandboxCpuQuota] = String(r.cpuQuota);
  if (r?.cpuShares !== undefined) annotations[ANNOTATIONS.sandboxCpuShares] = String(r.cpuShares);
  if (r?.memoryLimitBytes !== undefined) annotations[ANNOTATIONS.sandboxMemory] = String(r.memoryLimitBytes);

  const caps = capabilitySet(undefined, resolved.availableCapabilities);
  const sysctls = podSysctls(input.sysctls, pod);
  const spec: OciSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: false,
      user: ociUser(resolved.user),
      args,
      env: mergeEnv(input.image.run.env, []),
      cwd: workingDirFor('', input.image.run.workingDir),
      capabilities: { bounding: caps, effective: [...caps], permitted: [...caps] },
      noNewPrivileges: true,
      oomScoreAdj: effectiveOomScoreAdj(
        input.oomScoreAdj ?? DEFAULT_INFRA_OOM_SCORE_ADJ,
        resolved.oomScoreAdjFloor,
      ),
    },
    root: { path: resolved.rootfsPath, readonly: true },
    mounts: infraMounts(pod),
    annotations,
    linux: {
      namespaces: infraNamespaces(pod),
      resources: { devices: devicesFor([], false), cpu: { shares: INFRA_CPU_SHARES } },
      cgroupsPath: cgroupsPath(pod.cgroupDriver, pod.cgroupParent, pod.sandboxId),
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
    },
  };
  if (!pod.hostNetwork && pod.hostname !== '') spec.hostname = pod.hostname;
  setIdMappings(spec, pod);
  if (Object.keys(sysctls).length > 0) spec.linux.sysctl = sysctls;
  return spec;
}
