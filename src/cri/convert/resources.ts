/** CRI LinuxContainerResources ⇄ the engine's resource input. Pure. */
import type { LinuxContainerResources } from '../../generated/runtime/v1/LinuxContainerResources.js';
import type { LinuxContainerResources__Output } from '../../generated/runtime/v1/LinuxContainerResources.js';
import type { ContainerResourcesInput } from '../../container/spec-types.js';
import { InvalidArgumentError } from '../../errors.js';

/** int64 fields arrive as decimal strings; '' and '0' mean unset. */
function int(value: string, field: string): number | undefined {
  if (value === '' || value === '0') return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(field, `"${value}" is not an integer`);
  return n;
}

/** A uint64 field (a decimal string); '' is 0. */
function uint(value: string, field: string): number {
  const n = Number(value === '' ? '0' : value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(field, `"${value}" is out of range`);
  return n;
}

export function resourcesFromCri(
  r: LinuxContainerResources__Output,
  prefix: string,
): ContainerResourcesInput {
  return {
    cpuShares: int(r.cpu_shares, `${prefix}.cpu_shares`),
    cpuQuota: int(r.cpu_quota, `${prefix}.cpu_quota`),
    cpuPeriod: int(r.cpu_period, `${prefix}.cpu_period`),
    memoryLimitBytes: int(r.memory_limit_in_bytes, `${prefix}.memory_limit_in_bytes`),
    memorySwapLimitBytes: int(r.memory_swap_limit_in_bytes, `${prefix}.memory_swap_limit_in_bytes`),
    oomScoreAdj: int(r.oom_score_adj, `${prefix}.oom_score_adj`),
    cpusetCpus: r.cpuset_cpus,
    cpusetMems: r.cpuset_mems,
    hugepageLimits: r.hugepage_limits.map((h, i) => ({
      pageSize: h.page_size,
      limit: uint(h.limit, `${prefix}.hugepage_limits[${i}].limit`),
    })),
    unified: r.unified,
  };
}

/** What ContainerStatus.resources reports: the last update, else what the container was created with. */
export function reportedResources(updated: unknown, criConfig: unknown): LinuxContainerResources | null {
  if (typeof updated === 'object' && updated !== null) return updated;
  const linux = (criConfig as { linux?: { resources?: unknown } } | null)?.linux;
  const created = linux?.resources;
  return typeof created === 'object' && created !== null ? created : null;
}
