/**
 * Resource statistics of containers and pods, read from the kernel on demand:
 * - CPU, memory, swap and process counts from the container's cgroup, v1 or v2 (v2 when
 *   `/sys/fs/cgroup/cgroup.controllers` exists). The cgroup is found through the container's
 *   init process (`/proc/<pid>/cgroup`), so the cgroupfs and systemd drivers both work; the path
 *   must end in the container's own cgroup name, which guards against a reused pid.
 * - CPU rate (nano cores) from the previous sample of the same container or pod, kept here.
 * - Writable layer bytes and inodes by walking the container's overlay upper dir (bounded, and
 *   cached for a few seconds, so listing many containers stays cheap).
 * - Pod network counters from `/proc/<infra pid>/net/dev` (the pod's network namespace).
 *
 * All numbers are bigint (CPU nanoseconds overflow 2^53 on a busy node); the CRI layer turns
 * them into proto strings.
 */
import { access, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log/logger.js';
import type { StoredContainer } from '../store/state-store.js';
import { diskUsage } from '../util/disk-usage.js';

// --- samples -------------------------------------------------------------------------------------

export interface CpuSample {
  /** Wall clock, nanoseconds since the epoch. */
  timestampNs: bigint;
  /** Cumulative CPU time of every process in the cgroup. */
  usageCoreNs: bigint;
  /** CPU use since the previous sample, in billionths of a core; undefined on the first one. */
  usageNanoCores: bigint | undefined;
}

export interface MemorySample {
  timestampNs: bigint;
  /** usage − inactive file cache (what the kubelet evicts and the OOM killer looks at). */
  workingSetBytes: bigint;
  usageBytes: bigint;
  rssBytes: bigint | undefined;
  /** limit − working set, when the cgroup has a limit. */
  availableBytes: bigint | undefined;
  pageFaults: bigint | undefined;
  majorPageFaults: bigint | undefined;
}

export interface SwapSample {
  timestampNs: bigint;
  usageBytes: bigint;
  availableBytes: bigint | undefined;
}

export interface FilesystemSample {
  timestampNs: bigint;
  /** A directory on the filesystem that holds the writable layers. */
  mountpoint: string;
  usedBytes: bigint;
  inodesUsed: bigint;
}

export interface ProcessSample {
  timestampNs: bigint;
  count: bigint;
}

export interface ContainerStatsSample {
  cpu: CpuSample | undefined;
  memory: MemorySample | undefined;
  swap: SwapSample | undefined;
  writableLayer: FilesystemSample | undefined;
  process: ProcessSample | undefined;
}

export interface NetworkInterfaceSample {
  name: string;
  rxBytes: bigint;
  rxErrors: bigint;
  txBytes: bigint;
  txErrors: bigint;
}

export interface NetworkSample {
  timestampNs: bigint;
  defaultInterface: NetworkInterfaceSample;
  interfaces: NetworkInterfaceSample[];
}

export interface PodStatsSample {
  cpu: CpuSample | undefined;
  memory: MemorySample | undefined;
  network: NetworkSample | undefined;
  process: ProcessSample | undefined;
  /** The pod's application containers given to readPodStats, in the same order. */
  containers: { container: StoredContainer; stats: ContainerStatsSample }[];
}

/** What readPodStats needs to know about a pod. */
export interface PodStatsInput {
  sandboxId: string;
  /** PodSandboxConfig.linux.cgroup_parent; '' = none (then the containers' sums are used). */
  cgroupParent: string;
  /** Host-network pods have no counters of their own. */
  hostNetwork: boolean;
  infra: StoredContainer | undefined;
  /** Application containers to report (normally the running ones). */
  containers: StoredContainer[];
}

// --- parsers (pure) ------------------------------------------------------------------------------

/** A single-number cgroup file (`cpuacct.usage`, `memory.current`, ...); "max" → undefined. */
export function parseCounter(text: string): bigint | undefined {
  const t = text.trim();
  return /^\d+$/.test(t) ? BigInt(t) : undefined;
}

/** "key value" lines (`memory.stat`, `cpu.stat`); lines that are not that are skipped. */
export function parseKeyedCounters(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const m = /^(\S+)\s+(\d+)\s*$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out.set(m[1], BigInt(m[2]));
  }
  return out;
}

export interface ProcCgroup {
  /** The cgroup v2 path (`0::/path`), if the line is there. */
  unified: string | undefined;
  /** cgroup v1 controller → path (`4:memory:/path`; `1:cpu,cpuacct:/p` gives both). */
  controllers: Map<string, string>;
}

/** /proc/<pid>/cgroup. Paths are relative to the reader's cgroup namespace (crisp's: the host's). */
export function parseProcCgroup(text: string): ProcCgroup {
  const controllers = new Map<string, string>();
  let unified: string | undefined;
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const hierarchy = line.slice(0, first);
    const names = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (hierarchy === '0' && names === '') {
      unified = path;
      continue;
    }
    for (const name of names.split(',')) if (name !== '') controllers.set(name, path);
  }
  return { unified, controllers };
}

/** /proc/<pid>/net/dev: counters per interface, in the file's order. */
export function parseNetDev(text: string): NetworkInterfaceSample[] {
  const out: NetworkInterfaceSample[] = [];
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const fields = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/);
    if (name === '' || name.includes('|') || fields.length < 16 || !fields.every((f) => /^\d+$/.test(f))) {
      continue;
    }
    const n = (i: number): bigint => BigInt(fields[i] ?? '0');
    out.push({ name, rxBytes: n(0), rxErrors: n(2), txBytes: n(8), txErrors: n(10) });
  }
  return out;
}

/** The pod's main interface: eth0 (what CNI plugins create), else the first that is not lo. */
export function defaultInterface(
  ifaces: readonly NetworkInterfaceSample[],
): NetworkInterfaceSample | undefined {
  return (
    ifaces.find((i) => i.name === 'eth0') ??
    ifaces.find((i) => i.name !== 'lo') ??
    ifaces.find((i) => i.name === 'lo')
  );
}

/** Limits at or above this are "no limit" (v1 writes PAGE_COUNTER_MAX × page size there). */
const UNLIMITED = 1n << 62n;

interface MemoryCounters {
  usage: bigint;
  workingSet: bigint;
  rss: bigint | undefined;
  limit: bigint | undefined;
  pageFaults: bigint | undefined;
  majorPageFaults: bigint | undefined;
}

function limited(limit: bigint | undefined): bigint | undefined {
  return limit !== undefined && limit < UNLIMITED ? limit : undefined;
}

function workingSet(usage: bigint, inactiveFile: bigint | undefined): bigint {
  const inactive = inactiveFile ?? 0n;
  return usage > inactive ? usage - inactive : 0n;
}

/** cgroup v1: memory.usage_in_bytes, memory.stat (hierarchical total_* keys), memory.limit_in_bytes. */
export function memoryFromV1(
  usage: bigint,
  stat: ReadonlyMap<string, bigint>,
  limit: bigint | undefined,
): MemoryCounters {
  const pick = (key: string): bigint | undefined => stat.get(`total_${key}`) ?? stat.get(key);
  return {
    usage,
    workingSet: workingSet(usage, pick('inactive_file')),
    rss: pick('rss'),
    limit: limited(limit),
    pageFaults: pick('pgfault'),
    majorPageFaults: pick('pgmajfault'),
  };
}

/** cgroup v2: memory.current, memory.stat (anon, inactive_file, pgfault, pgmajfault), memory.max. */
export function memoryFromV2(
  current: bigint,
  stat: ReadonlyMap<string, bigint>,
  max: bigint | undefined,
): MemoryCounters {
  return {
    usage: current,
    workingSet: workingSet(current, stat.get('inactive_file')),
    rss: stat.get('anon'),
    limit: limited(max),
    pageFaults: stat.get('pgfault'),
    majorPageFaults: stat.get('pgmajfault'),
  };
}

/** CPU use between two samples in billionths of a core; undefined when it cannot be known. */
export function nanoCores(
  prev: { monoNs: bigint; usageNs: bigint },
  cur: { monoNs: bigint; usageNs: bigint },
): bigint | undefined {
  const dt = cur.monoNs - prev.monoNs;
  // A counter that went backwards belongs to a new cgroup (the container was restarted).
  if (dt <= 0n || cur.usageNs < prev.usageNs) return undefined;
  return ((cur.usageNs - prev.usageNs) * 1_000_000_000n) / dt;
}

// --- cgroups -------------------------------------------------------------------------------------

/** Where one cgroup's files are. */
export type CgroupLocation =
  | { version: 2; dir: string }
  | { version: 1; cpuacct: string | undefined; memory: string | undefined; pids: string | undefined };

/** The raw counters of one cgroup (or a sum of several); undefined = not available. */
export interface CgroupCounters {
  cpuUsageNs: bigint | undefined;
  memory: MemoryCounters | undefined;
  swapUsage: bigint | undefined;
  swapLimit: bigint | undefined;
  pids: bigint | undefined;
}

const EMPTY_COUNTERS: CgroupCounters = {
  cpuUsageNs: undefined,
  memory: undefined,
  swapUsage: undefined,
  swapLimit: undefined,
  pids: undefined,
};

/**
 * The cgroup of a process from its /proc/<pid>/cgroup text; undefined if the innermost
 * directory does not name `token` (the pid now belongs to something else).
 */
export function locateCgroup(
  version: 1 | 2,
  procCgroup: ProcCgroup,
  cgroupRoot: string,
  token: string,
): CgroupLocation | undefined {
  const mine = (p: string | undefined): p is string => p !== undefined && basename(p).includes(token);
  if (version === 2) {
    return mine(procCgroup.unified) ? { version: 2, dir: join(cgroupRoot, procCgroup.unified) } : undefined;
  }
  const dir = (controller: string): string | undefined => {
    const p = procCgroup.controllers.get(controller);
    return mine(p) ? join(cgroupRoot, controller, p) : undefined;
  };
  const loc = { version: 1 as const, cpuacct: dir('cpuacct'), memory: dir('memory'), pids: dir('pids') };
  return loc.cpuacct === undefined && loc.memory === undefined && loc.pids === undefined ? undefined : loc;
}

/** The parent cgroup (the pod's, for a container created under a cgroup parent). */
export function parentCgroup(loc: CgroupLocation): CgroupLocation {
  const up = (d: string | undefined): string | undefined => (d === undefined ? undefined : dirname(d));
  return loc.version === 2
    ? { version: 2, dir: dirname(loc.dir) }
    : { version: 1, cpuacct: up(loc.cpuacct), memory: up(loc.memory), pids: up(loc.pids) };
}

/** Errors that mean "that is gone or not there" rather than a fault. */
const ABSENT = new Set(['ENOENT', 'ENODEV', 'ESRCH', 'ENOTDIR', 'EINVAL', 'ENXIO']);

function errnoOf(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

async function readOptional(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (ABSENT.has(errnoOf(err) ?? '')) return undefined;
    throw err;
  }
}

async function counterAt(path: string | undefined): Promise<bigint | undefined> {
  const text = await readOptional(path);
  return text === undefined ? undefined : parseCounter(text);
}

async function keyedAt(path: string | undefined): Promise<Map<string, bigint> | undefined> {
  const text = await readOptional(path);
  return text === undefined ? undefined : parseKeyedCounters(text);
}

const inDir = (dir: string | undefined, file: string): string | undefined =>
  dir === undefined ? undefined : join(dir, file);

/** Reads a cgroup's counters; files that are missing (controller off, cgroup gone) are left out. */
export async function readCgroupCounters(loc: CgroupLocation): Promise<CgroupCounters> {
  if (loc.version === 2) {
    const f = (name: string): string => join(loc.dir, name);
    const [cpuStat, current, memStat, max, swap, swapMax, pids] = await Promise.all([
      keyedAt(f('cpu.stat')),
      counterAt(f('memory.current')),
      keyedAt(f('memory.stat')),
      counterAt(f('memory.max')),
      counterAt(f('memory.swap.current')),
      counterAt(f('memory.swap.max')),
      counterAt(f('pids.current')),
    ]);
    const usec = cpuStat?.get('usage_usec');
    return {
      cpuUsageNs: usec === undefined ? undefined : usec * 1000n,
      memory: current === undefined ? undefined : memoryFromV2(current, memStat ?? new Map(), max),
      swapUsage: swap,
      swapLimit: limited(swapMax),
      pids,
    };
  }
  const [usage, memUsage, memStat, limit, memsw, memswLimit, pids] = await Promise.all([
    counterAt(inDir(loc.cpuacct, 'cpuacct.usage')),
    counterAt(inDir(loc.memory, 'memory.usage_in_bytes')),
    keyedAt(inDir(loc.memory, 'memory.stat')),
    counterAt(inDir(loc.memory, 'memory.limit_in_bytes')),
    counterAt(inDir(loc.memory, 'memory.memsw.usage_in_bytes')),
    counterAt(inDir(loc.memory, 'memory.memsw.limit_in_bytes')),
    counterAt(inDir(loc.pids, 'pids.current')),
  ]);
  const memory = memUsage === undefined ? undefined : memoryFromV1(memUsage, memStat ?? new Map(), limit);
  // memsw counts memory + swap; swap alone is the difference (and its limit likewise).
  const swapUsage =
    memsw !== undefined && memUsage !== undefined && memsw >= memUsage ? memsw - memUsage : undefined;
  const memLimit = memory?.limit;
  const swLimit = limited(memswLimit);
  return {
    cpuUsageNs: usage,
    memory,
    swapUsage,
    swapLimit:
      swLimit !== undefined && memLimit !== undefined && swLimit >= memLimit ? swLimit - memLimit : undefined,
    pids,
  };
}

function sumOptional(values: (bigint | undefined)[]): bigint | undefined {
  let total: bigint | undefined;
  for (const v of values) if (v !== undefined) total = (total ?? 0n) + v;
  return total;
}

/** Counters of several cgroups added up (limits do not add up: they are dropped). */
export function sumCounters(all: readonly CgroupCounters[]): CgroupCounters {
  const mems = all.map((c) => c.memory).filter((m): m is MemoryCounters => m !== undefined);
  const memSum = (pick: (m: MemoryCounters) => bigint | undefined): bigint | undefined =>
    sumOptional(mems.map(pick));
  return {
    cpuUsageNs: sumOptional(all.map((c) => c.cpuUsageNs)),
    memory:
      mems.length === 0
        ? undefined
        : {
            usage: memSum((m) => m.usage) ?? 0n,
            workingSet: memSum((m) => m.workingSet) ?? 0n,
            rss: memSum((m) => m.rss),
            limit: undefined,
            pageFaults: memSum((m) => m.pageFaults),
            majorPageFaults: memSum((m) => m.majorPageFaults),
          },
    swapUsage: sumOptional(all.map((c) => c.swapUsage)),
    swapLimit: undefined,
    pids: sumOptional(all.map((c) => c.pids)),
  };
}

// --- the writable layer --------------------------------------------------------------------------

// --- the reader ----------------------------------------------------------------------------------

export interface StatsClock {
  /** Nanoseconds since the epoch (the timestamps reported). */
  wallNs(): bigint;
  /** A monotonic clock in nanoseconds (the CPU rate's interval). */
  monoNs(): bigint;
}

const systemClock: StatsClock = {
  wallNs: () => BigInt(Date.now()) * 1_000_000n,
  monoNs: () => process.hrtime.bigint(),
};

export interface StatsReaderOptions {
  /** The container's writable layer: its overlay upper dir (`<root_dir>/containers/<id>/upper`). */
  upperDir: (containerId: string) => string;
  log?: Logger;
  /** Defaults to /sys/fs/cgroup. */
  cgroupRoot?: string;
  /** Defaults to /proc. */
  procRoot?: string;
  clock?: StatsClock;
  /** How long a writable-layer walk is reused (at least; a slow walk is reused 10× its time). */
  fsCacheMs?: number;
  /** Bounds of one writable-layer walk. */
  fsMaxEntries?: number;
  fsDeadlineMs?: number;
  /** A CPU sample closer than this to the stored one reuses the stored rate (and keeps the base). */
  minRateWindowMs?: number;
}

export const DEFAULT_FS_CACHE_MS = 5_000;
const DEFAULT_FS_MAX_ENTRIES = 200_000;
const DEFAULT_FS_DEADLINE_MS = 2_000;
const DEFAULT_MIN_RATE_WINDOW_MS = 500;
/** State kept for a container or pod nobody asked about for this long is dropped. */
const FORGET_AFTER_MS = 10 * 60_000;
const SWEEP_EVERY_MS = 60_000;
/** Containers read at once by readContainersStats. */
const READ_CONCURRENCY = 16;

interface CpuBase {
  monoNs: bigint;
  usageNs: bigint;
  rate: bigint | undefined;
  touchedMs: number;
}

interface FsEntry {
  value: FilesystemSample | undefined;
  validUntilMs: number;
  pending: Promise<FilesystemSample | undefined> | undefined;
  touchedMs: number;
}

interface CgroupEntry {
  pid: number;
  loc: CgroupLocation | undefined;
  touchedMs: number;
}

/** A container whose processes may be read (CRI RUNNING: running or paused). */
export function hasLiveCgroup(c: StoredContainer): boolean {
  return (c.state.state === 'running' || c.state.state === 'paused') && c.state.pid !== undefined;
}

/** Reads container and pod statistics; keeps the previous CPU samples and a writable-layer cache. */
export class StatsReader {
  private readonly cgroupRoot: string;
  private readonly procRoot: string;
  private readonly clock: StatsClock;
  private readonly fsCacheMs: number;
  private readonly fsBounds: { maxEntries: number; deadlineMs: number };
  private readonly minRateWindowNs: bigint;
  private version: Promise<1 | 2> | undefined;
  private readonly cpuBases = new Map<string, CpuBase>();
  private readonly fsCache = new Map<string, FsEntry>();
  private readonly cgroups = new Map<string, CgroupEntry>();
  private lastSweepMs = performance.now();

  constructor(private readonly opts: StatsReaderOptions) {
    this.cgroupRoot = opts.cgroupRoot ?? '/sys/fs/cgroup';
    this.procRoot = opts.procRoot ?? '/proc';
    this.clock = opts.clock ?? systemClock;
    this.fsCacheMs = opts.fsCacheMs ?? DEFAULT_FS_CACHE_MS;
    this.fsBounds = {
      maxEntries: opts.fsMaxEntries ?? DEFAULT_FS_MAX_ENTRIES,
      deadlineMs: opts.fsDeadlineMs ?? DEFAULT_FS_DEADLINE_MS,
    };
    this.minRateWindowNs = BigInt(opts.minRateWindowMs ?? DEFAULT_MIN_RATE_WINDOW_MS) * 1_000_000n;
  }

  /** 2 on a unified (v2) host, 1 on a v1 or hybrid one. */
  cgroupVersion(): Promise<1 | 2> {
    this.version ??= access(join(this.cgroupRoot, 'cgroup.controllers')).then(
      () => 2 as const,
      () => 1 as const,
    );
    return this.version;
  }

  /** One container's statistics; a container that is not running has no cgroup numbers. */
  async readContainerStats(c: StoredContainer): Promise<ContainerStatsSample> {
    return (await this.containerSample(c)).sample;
  }

  /** Several containers' statistics, a bounded number at a time, in the order given. */
  async readContainersStats(cs: readonly StoredContainer[]): Promise<ContainerStatsSample[]> {
    const out: ContainerStatsSample[] = new Array<ContainerStatsSample>(cs.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < cs.length; i = next++) {
        const c = cs[i];
        if (c) out[i] = await this.readContainerStats(c);
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, cs.length) }, worker));
    return out;
  }

  /**
   * A pod's statistics: its cgroup when it has a cgroup parent (the parent of the infra
   * container's cgroup), else the sum of its infra and application containers; network from
   * the pod's namespace; the given containers' own statistics.
   */
  async readPodStats(pod: PodStatsInput): Promise<PodStatsSample> {
    this.sweep();
    const wall = this.clock.wallNs();
    const mono = this.clock.monoNs();
    const appSamples = await Promise.all(pod.containers.map((c) => this.containerSample(c)));
    const infra = pod.infra && hasLiveCgroup(pod.infra) ? pod.infra : undefined;
    let counters: CgroupCounters = EMPTY_COUNTERS;
    if (pod.cgroupParent !== '') {
      const loc = infra ? await this.locate(infra) : undefined;
      if (loc) counters = await readCgroupCounters(parentCgroup(loc));
    } else {
      const infraCounters = infra ? await this.countersOf(infra) : EMPTY_COUNTERS;
      counters = sumCounters([infraCounters, ...appSamples.map((s) => s.counters)]);
    }
    const network = infra && !pod.hostNetwork ? await this.network(infra, wall) : undefined;
    const base = this.toSample(`pod:${pod.sandboxId}`, counters, wall, mono);
    return {
      cpu: base.cpu,
      memory: base.memory,
      network,
      process: base.process,
      containers: pod.containers.map((container, i) => ({
        container,
        stats: appSamples[i]?.sample ?? emptySample(),
      })),
    };
  }

  // --- internals ---------------------------------------------------------------------------------

  private async containerSample(
    c: StoredContainer,
  ): Promise<{ sample: ContainerStatsSample; counters: CgroupCounters }> {
    this.sweep();
    const wall = this.clock.wallNs();
    const mono = this.clock.monoNs();
    const [counters, writableLayer] = await Promise.all([
      hasLiveCgroup(c) ? this.countersOf(c) : Promise.resolve(EMPTY_COUNTERS),
      this.writableLayer(c.config.id),
    ]);
    const base = this.toSample(c.config.id, counters, wall, mono);
    return { sample: { ...base, writableLayer }, counters };
  }

  private toSample(
    key: string,
    counters: CgroupCounters,
    wall: bigint,
    mono: bigint,
  ): Omit<ContainerStatsSample, 'writableLayer'> {
    const m = counters.memory;
    return {
      cpu:
        counters.cpuUsageNs === undefined
          ? undefined
          : {
              timestampNs: wall,
              usageCoreNs: counters.cpuUsageNs,
              usageNanoCores: this.rate(key, mono, counters.cpuUsageNs),
            },
      memory:
        m === undefined
          ? undefined
          : {
              timestampNs: wall,
              workingSetBytes: m.workingSet,
              usageBytes: m.usage,
              rssBytes: m.rss,
              availableBytes:
                m.limit === undefined ? undefined : m.limit > m.workingSet ? m.limit - m.workingSet : 0n,
              pageFaults: m.pageFaults,
              majorPageFaults: m.majorPageFaults,
            },
      swap:
        counters.swapUsage === undefined
          ? undefined
          : {
              timestampNs: wall,
              usageBytes: counters.swapUsage,
              availableBytes:
                counters.swapLimit === undefined
                  ? undefined
                  : counters.swapLimit > counters.swapUsage
                    ? counters.swapLimit - counters.swapUsage
                    : 0n,
            },
      process: counters.pids === undefined ? undefined : { timestampNs: wall, count: counters.pids },
    };
  }

  /**
   * CPU rate against the stored sample, which this one then replaces. A sample too close to the
   * stored one (two clients polling at once) reuses the stored rate and keeps the stored base,
   * so neither client sees the noise of a few-millisecond window.
   */
  private rate(key: string, monoNs: bigint, usageNs: bigint): bigint | undefined {
    const now = performance.now();
    const prev = this.cpuBases.get(key);
    if (prev && usageNs >= prev.usageNs && monoNs - prev.monoNs < this.minRateWindowNs) {
      prev.touchedMs = now;
      return prev.rate;
    }
    const rate = prev ? nanoCores(prev, { monoNs, usageNs }) : undefined;
    this.cpuBases.set(key, { monoNs, usageNs, rate, touchedMs: now });
    return rate;
  }

  private async countersOf(c: StoredContainer): Promise<CgroupCounters> {
    const loc = await this.locate(c);
    return loc ? readCgroupCounters(loc) : EMPTY_COUNTERS;
  }

  /** The container's cgroup, found through its init process (cached per container and pid). */
  private async locate(c: StoredContainer): Promise<CgroupLocation | undefined> {
    const pid = c.state.pid;
    if (pid === undefined) return undefined;
    const cached = this.cgroups.get(c.config.id);
    if (cached?.pid === pid && cached.loc !== undefined) {
      cached.touchedMs = performance.now();
      return cached.loc;
    }
    const text = await readOptional(join(this.procRoot, String(pid), 'cgroup'));
    if (text === undefined) return undefined;
    // The infra container's cgroup is named after the pod (spec.ts cgroupsPath).
    const token = c.config.kind === 'infra' ? c.config.sandboxId : c.config.id;
    const loc = locateCgroup(await this.cgroupVersion(), parseProcCgroup(text), this.cgroupRoot, token);
    this.cgroups.set(c.config.id, { pid, loc, touchedMs: performance.now() });
    return loc;
  }

  private async network(infra: StoredContainer, wall: bigint): Promise<NetworkSample | undefined> {
    const pid = infra.state.pid;
    if (pid === undefined) return undefined;
    const text = await readOptional(join(this.procRoot, String(pid), 'net', 'dev'));
    if (text === undefined) return undefined;
    const interfaces = parseNetDev(text);
    const def = defaultInterface(interfaces);
    return def ? { timestampNs: wall, defaultInterface: def, interfaces } : undefined;
  }

  /** The writable layer's usage, from the cache while it is fresh; one walk at a time per container. */
  private async writableLayer(id: string): Promise<FilesystemSample | undefined> {
    const now = performance.now();
    const entry = this.fsCache.get(id);
    if (entry) {
      entry.touchedMs = now;
      if (entry.pending) return entry.pending;
      if (now < entry.validUntilMs) return entry.value;
    }
    const fresh: FsEntry = entry ?? { value: undefined, validUntilMs: 0, pending: undefined, touchedMs: now };
    fresh.pending = this.walk(id).then(
      ({ value, tookMs }) => {
        fresh.value = value;
        fresh.validUntilMs = performance.now() + Math.max(this.fsCacheMs, tookMs * 10);
        fresh.pending = undefined;
        return value;
      },
      (err: unknown) => {
        fresh.pending = undefined;
        throw err;
      },
    );
    this.fsCache.set(id, fresh);
    return fresh.pending;
  }

  private async walk(id: string): Promise<{ value: FilesystemSample | undefined; tookMs: number }> {
    const t0 = performance.now();
    const upper = this.opts.upperDir(id);
    const usage = await diskUsage(upper, this.fsBounds);
    const tookMs = performance.now() - t0;
    if (usage && !usage.complete) {
      this.opts.log?.warn(
        { containerId: id, durationMs: Math.round(tookMs), bounds: this.fsBounds },
        'writable layer too large to measure fully; reporting what was counted',
      );
    }
    return {
      tookMs,
      value:
        usage === undefined
          ? undefined
          : {
              timestampNs: this.clock.wallNs(),
              // upperDir is <containers dir>/<id>/upper: report the containers dir's filesystem.
              mountpoint: dirname(dirname(upper)),
              usedBytes: usage.bytes,
              inodesUsed: usage.inodes,
            },
    };
  }

  /** Forgets containers and pods nobody asked about for a while (removed ones, mostly). */
  private sweep(): void {
    const now = performance.now();
    if (now - this.lastSweepMs < SWEEP_EVERY_MS) return;
    this.lastSweepMs = now;
    for (const map of [this.cpuBases, this.fsCache, this.cgroups] as Map<string, { touchedMs: number }>[]) {
      for (const [key, v] of map) if (now - v.touchedMs > FORGET_AFTER_MS) map.delete(key);
    }
  }
}

function emptySample(): ContainerStatsSample {
  return { cpu: undefined, memory: undefined, swap: undefined, writableLayer: undefined, process: undefined };
}
