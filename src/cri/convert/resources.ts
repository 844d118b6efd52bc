/**
 * CRI LinuxContainerResources ⇄ the engine's resource input. Pure. Values no kernel accepts are
 * refused here, naming the field, before anything is created; what depends on the node (its huge
 * page sizes, cgroup v1 or v2) is checked by container/spec.ts.
 */
import type { LinuxContainerResources } from '../../generated/runtime/v1/LinuxContainerResources.js';
import type { LinuxContainerResources__Output } from '../../generated/runtime/v1/LinuxContainerResources.js';
import type { ContainerResourcesInput } from '../../container/spec-types.js';
import {
  CFS_PERIOD_MAX,
  CFS_PERIOD_MIN,
  CFS_QUOTA_MIN,
  HUGEPAGE_SIZE,
  MIN_MEMORY_LIMIT_BYTES,
  UNIFIED_KEY,
} from '../../container/spec.js';
import { InvalidArgumentError } from '../../errors.js';
import { checkCount, checkStringMap, shown } from '../limits.js';

/** cgroup v1 cpu.shares bounds (kubelet sends 2..262144; v2's cpu.weight is derived from them). */
export const CPU_SHARES_MAX = 262_144;
/** The kernel's oom_score_adj bounds. */
export const OOM_SCORE_ADJ_MIN = -1000;
export const OOM_SCORE_ADJ_MAX = 1000;
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

/** A set int64 field within min..max; unset stays undefined. */
function ranged(value: string, field: string, min: number, max: number, why: string): number | undefined {
  const n = int(value, field);
  if (n !== undefined && (n < min || n > max)) {
    throw new InvalidArgumentError(field, `${n} is out of range: ${why}`);
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
  const quota = int(r.cpu_quota, `${prefix}.cpu_quota`);
  if (quota !== undefined && quota !== -1 && quota < CFS_QUOTA_MIN) {
    throw new InvalidArgumentError(
      `${prefix}.cpu_quota`,
      `${quota} is out of range: -1 (no limit) or at least ${CFS_QUOTA_MIN} microseconds`,
    );
  }
  const memory = int(r.memory_limit_in_bytes, `${prefix}.memory_limit_in_bytes`);
  if (memory !== undefined && memory < MIN_MEMORY_LIMIT_BYTES) {
    throw new InvalidArgumentError(
      `${prefix}.memory_limit_in_bytes`,
      `${memory} is below crisp's minimum of ${MIN_MEMORY_LIMIT_BYTES} bytes (4 MiB): runc cannot start a container in less`,
    );
  }
  checkCount(r.hugepage_limits, `${prefix}.hugepage_limits`, HUGEPAGE_LIMITS_MAX);
  checkStringMap(r.unified, `${prefix}.unified`);
  for (const [key, value] of Object.entries(r.unified)) {
    if (!UNIFIED_KEY.test(key) || value.includes('\n')) {
      throw new InvalidArgumentError(
        `${prefix}.unified[${shown(key, 40)}]`,
        'must be a cgroup v2 file name with a one-line value',
      );
    }
  }
  return {
    cpuShares: ranged(r.cpu_shares, `${prefix}.cpu_shares`, 0, CPU_SHARES_MAX, `0..${CPU_SHARES_MAX}`),
    cpuQuota: quota,
    cpuPeriod: ranged(
      r.cpu_period,
      `${prefix}.cpu_period`,
      CFS_PERIOD_MIN,
      CFS_PERIOD_MAX,
      `${CFS_PERIOD_MIN}..${CFS_PERIOD_MAX} microseconds`,
    ),
    memoryLimitBytes: memory,
    memorySwapLimitBytes: ranged(
      r.memory_swap_limit_in_bytes,
      `${prefix}.memory_swap_limit_in_bytes`,
      -1,
      MAX,
      '-1 (unlimited) or a number of bytes',
    ),
    oomScoreAdj: ranged(
      r.oom_score_adj,
      `${prefix}.oom_score_adj`,
      OOM_SCORE_ADJ_MIN,
      OOM_SCORE_ADJ_MAX,
      `${OOM_SCORE_ADJ_MIN}..${OOM_SCORE_ADJ_MAX}`,
    ),
    cpusetCpus: cpuset(r.cpuset_cpus, `${prefix}.cpuset_cpus`),
    cpusetMems: cpuset(r.cpuset_mems, `${prefix}.cpuset_mems`),
    hugepageLimits: r.hugepage_limits.map((h, i) => {
      const field = `${prefix}.hugepage_limits[${i}]`;
      if (!HUGEPAGE_SIZE.test(h.page_size)) {
        throw new InvalidArgumentError(
          `${field}.page_size`,
          `${shown(h.page_size)} is not a huge page size such as "2MB" or "1GB"`,
        );
      }
      return { pageSize: h.page_size, limit: uint(h.limit, `${field}.limit`) };
    }),
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
