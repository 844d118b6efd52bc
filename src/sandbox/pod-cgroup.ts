/**
 * A pod's own cgroup (PodSandboxConfig.linux.cgroup_parent, made by kubelet; runc creates what is
 * missing when the infra container starts) and the limits UpdatePodSandboxResources writes to it
 * after an in-place resize: the pod's resources plus its overhead, written straight to the cgroup
 * files (runc only updates containers). cgroupfs and systemd paths, cgroup v1 and v2.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { FailedPreconditionError } from '../errors.js';
import type { ContainerResourcesInput } from '../container/spec-types.js';

/** What a pod cgroup gets: the pod's limits with the overhead added. */
export interface PodCgroupLimits {
  cpuShares?: number;
  /** -1 = no limit. */
  cpuQuota?: number;
  cpuPeriod?: number;
  memoryLimitBytes?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
}

/**
 * The pod cgroup's limits: the pod's resources plus the overhead for shares, quota and memory
 * (an unset or unlimited pod value stays so; the overhead alone sets nothing), the pod's period
 * and cpusets.
 */
export function podLimits(
  resources: ContainerResourcesInput | undefined,
  overhead: ContainerResourcesInput | undefined,
): PodCgroupLimits {
  const out: PodCgroupLimits = {};
  const plus = (a: number | undefined, b: number | undefined): number | undefined =>
    a === undefined || a <= 0 ? a : a + (b !== undefined && b > 0 ? b : 0);
  const shares = plus(resources?.cpuShares, overhead?.cpuShares);
  if (shares !== undefined) out.cpuShares = shares;
  const quota = plus(resources?.cpuQuota, overhead?.cpuQuota);
  if (quota !== undefined) out.cpuQuota = quota;
  if (resources?.cpuPeriod !== undefined) out.cpuPeriod = resources.cpuPeriod;
  const memory = plus(resources?.memoryLimitBytes, overhead?.memoryLimitBytes);
  if (memory !== undefined) out.memoryLimitBytes = memory;
  if (resources?.cpusetCpus) out.cpusetCpus = resources.cpusetCpus;
  if (resources?.cpusetMems) out.cpusetMems = resources.cpusetMems;
  return out;
}

/**
 * The pod cgroup's path below a hierarchy's root: the parent as given for cgroupfs; for systemd,
 * the slice expanded as systemd nests it (`kubepods-burstable-pod1.slice` →
 * `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice`).
 */
export function podCgroupPath(driver: 'cgroupfs' | 'systemd', parent: string): string {
  if (driver === 'cgroupfs') return posix.normalize(`/${parent}`);
  const slice = posix.basename(parent);
  const name = slice.replace(/\.slice$/, '');
  if (name === '-' || name === '') return '/';
  const parts = name.split('-');
  return `/${parts.map((_, i) => `${parts.slice(0, i + 1).join('-')}.slice`).join('/')}`;
}

/** runc's cpu.shares (2..262144) → cgroup v2 cpu.weight (1..10000) conversion. */
export function sharesToWeight(shares: number): number {
  if (shares <= 0) return 100;
  const clamped = Math.min(Math.max(shares, 2), 262_144);
  return 1 + Math.floor(((clamped - 2) * 9999) / 262_142);
}

/** The files to write, in order, for a cgroup at `path` (below each hierarchy's root). */
export function podCgroupWrites(
  limits: PodCgroupLimits,
  version: 1 | 2,
  path: string,
): { controller: string; file: string; value: string }[] {
  const w: { controller: string; file: string; value: string }[] = [];
  const at = (controller: string, file: string, value: string): void => {
    w.push({ controller: version === 2 ? '' : controller, file: posix.join(path, file), value });
  };
  if (version === 1) {
    if (limits.cpuShares !== undefined) at('cpu', 'cpu.shares', String(limits.cpuShares));
    if (limits.cpuPeriod !== undefined) at('cpu', 'cpu.cfs_period_us', String(limits.cpuPeriod));
    if (limits.cpuQuota !== undefined) at('cpu', 'cpu.cfs_quota_us', String(limits.cpuQuota));
    if (limits.memoryLimitBytes !== undefined) {
      at('memory', 'memory.limit_in_bytes', String(limits.memoryLimitBytes));
    }
  } else {
    if (limits.cpuShares !== undefined) at('', 'cpu.weight', String(sharesToWeight(limits.cpuShares)));
    if (limits.cpuQuota !== undefined || limits.cpuPeriod !== undefined) {
      const quota = limits.cpuQuota === undefined || limits.cpuQuota < 0 ? 'max' : String(limits.cpuQuota);
      at('', 'cpu.max', limits.cpuPeriod === undefined ? quota : `${quota} ${limits.cpuPeriod}`);
    }
    if (limits.memoryLimitBytes !== undefined) at('', 'memory.max', String(limits.memoryLimitBytes));
  }
  if (limits.cpusetCpus !== undefined) at('cpuset', 'cpuset.cpus', limits.cpusetCpus);
  if (limits.cpusetMems !== undefined) at('cpuset', 'cpuset.mems', limits.cpusetMems);
  return w;
}

/**
 * Writes the limits to the pod cgroup under `root` (/sys/fs/cgroup). On v1, a memory limit above
 * the cgroup's memory+swap limit raises that first (the kernel refuses memory > memsw). A missing
 * cgroup is a FailedPreconditionError naming it.
 */
export async function applyPodLimits(
  root: string,
  version: 1 | 2,
  path: string,
  limits: PodCgroupLimits,
): Promise<void> {
  for (const { controller, file, value } of podCgroupWrites(limits, version, path)) {
    const full = join(root, controller, file);
    if (version === 1 && file.endsWith('memory.limit_in_bytes')) {
      const memsw = join(root, controller, posix.dirname(file), 'memory.memsw.limit_in_bytes');
      const current = await readFile(memsw, 'utf8').catch(() => undefined);
      if (current !== undefined && BigInt(current.trim()) < BigInt(value)) await writeFile(memsw, value);
    }
    try {
      await writeFile(full, value);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      if (code === 'ENOENT') {
        throw new FailedPreconditionError(
          `the pod's cgroup ${JSON.stringify(posix.dirname(file))} does not exist${controller === '' ? '' : ` in the ${controller} hierarchy`}: it is made when the pod starts; is the pod still running?`,
        );
      }
      throw new FailedPreconditionError(
        `cannot write ${value} to ${full} (${code}): the kernel refused the pod's new limit`,
        {
          cause: err,
        },
      );
    }
  }
}
