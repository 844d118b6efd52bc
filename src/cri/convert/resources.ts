/**
 * CRI LinuxContainerResources ⇄ the engine's resource input. Pure. What the wire format allows
 * but crisp cannot hold (non-integers, huge lists, malformed cpusets) is refused here, and then
 * the engine's own value rules (container/spec.ts checkResourceValues), all naming the field,
 * before anything is created; what depends on the node (its huge page sizes, cgroup v1 or v2) is
 * checked by the engine.
 */
import type { LinuxContainerResources } from '../../generated/runtime/v1/LinuxContainerResources.js';
import type { LinuxContainerResources__Output } from '../../generated/runtime/v1/LinuxContainerResources.js';
import type { ContainerResourcesInput } from '../../container/spec-types.js';
import { checkResourceValues } from '../../container/spec.js';
import { InvalidArgumentError } from '../../errors.js';
import { checkCount, checkStringMap, shown } from '../limits.js';

/** Huge page sizes a node can have (4: x86 2MB and 1GB, arm64 up to 4). */
const HUGEPAGE_LIMITS_MAX = 16;
/** A cpuset list as the kernel writes it: "0-3,8,10-11". */
const CPUSET = /^(?:[0-9]{1,5}(?:-[0-9]{1,5})?)(?:,[0-9]{1,5}(?:-[0-9]{1,5})?)*$/;

const MAX = Number.MAX_SAFE_INTEGER;

/** int64 fields arrive as decimal strings; '' and '0' mean unset. */
function int(value: string, field: string): number | undefined {
  if (value === '' || value === '0') return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(
      field,
      `${shown(value, 24)} is not an integer crisp can use (-${MAX}..${MAX})`,
    );
  }
  return n;
}

/** A uint64 field (a decimal string); '' is 0. */
function uint(value: string, field: string): number {
  const n = Number(value === '' ? '0' : value);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidArgumentError(field, `${shown(value, 24)} is out of range`);
  return n;
}

function cpuset(value: string, field: string): string {
  if (value !== '' && (value.length > 4096 || !CPUSET.test(value))) {
    throw new InvalidArgumentError(field, `${shown(value)} is not a CPU or memory node list such as "0-3,8"`);
  }
  return value;
}

export function resourcesFromCri(
  r: LinuxContainerResources__Output,
  prefix: string,
): ContainerResourcesInput {
  checkCount(r.hugepage_limits, `${prefix}.hugepage_limits`, HUGEPAGE_LIMITS_MAX);
  checkStringMap(r.unified, `${prefix}.unified`);
  const input: ContainerResourcesInput = {
    cpuShares: int(r.cpu_shares, `${prefix}.cpu_shares`),
    cpuQuota: int(r.cpu_quota, `${prefix}.cpu_quota`),
    cpuPeriod: int(r.cpu_period, `${prefix}.cpu_period`),
    memoryLimitBytes: int(r.memory_limit_in_bytes, `${prefix}.memory_limit_in_bytes`),
    memorySwapLimitBytes: int(r.memory_swap_limit_in_bytes, `${prefix}.memory_swap_limit_in_bytes`),
    oomScoreAdj: int(r.oom_score_adj, `${prefix}.oom_score_adj`),
    cpusetCpus: cpuset(r.cpuset_cpus, `${prefix}.cpuset_cpus`),
    cpusetMems: cpuset(r.cpuset_mems, `${prefix}.cpuset_mems`),
    hugepageLimits: r.hugepage_limits.map((h, i) => ({
      pageSize: h.page_size,
      limit: uint(h.limit, `${prefix}.hugepage_limits[${i}].limit`),
    })),
    unified: r.unified,
  };
  checkResourceValues(input, prefix);
  return input;
}

/** What ContainerStatus.resources reports: the last update, else what the container was created with. */
export function reportedResources(updated: unknown, criConfig: unknown): LinuxContainerResources | null {
  if (typeof updated === 'object' && updated !== null) return updated;
  const linux = (criConfig as { linux?: { resources?: unknown } } | null)?.linux;
  const created = linux?.resources;
  return typeof created === 'object' && created !== null ? created : null;
}
