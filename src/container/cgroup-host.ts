/**
 * What the node's cgroups can enforce, read once at start (I/O; the spec builder takes the result
 * as resolved facts): the cgroup version, whether the memory controller accounts swap, whether a
 * hugetlb controller is there for runc to use, and the huge page sizes the kernel offers.
 */
import { access, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface HostCgroups {
  /** 2 on a unified host; 1 on a v1 or hybrid one (runc then manages the v1 hierarchies). */
  version: 1 | 2;
  /** The memory controller accounts swap (memsw on v1, memory.swap.* on v2). */
  swap: boolean;
  /** runc can set hugetlb limits: a mounted v1 hugetlb hierarchy, or hugetlb on v2. */
  hugetlb: boolean;
  /** The kernel's huge page sizes as Kubernetes names them ("2MB", "1GB"), smallest first. */
  hugepageSizes: string[];
}

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

/** 2048 (kB) → "2MB", 1048576 → "1GB", 64 → "64KB": the largest unit that divides it. */
export function hugepageSizeName(kib: number): string {
  if (kib % (1024 * 1024) === 0) return `${kib / (1024 * 1024)}GB`;
  if (kib % 1024 === 0) return `${kib / 1024}MB`;
  return `${kib}KB`;
}

/** The sizes of `/sys/kernel/mm/hugepages/hugepages-<n>kB`, smallest first. */
export async function hugepageSizes(dir = '/sys/kernel/mm/hugepages'): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names
    .map((n) => /^hugepages-(\d+)kB$/.exec(n)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b)
    .map(hugepageSizeName);
}

/** On v2 the root cgroup has no memory files: look in its first child that has memory.max. */
async function v2SwapFiles(root: string): Promise<boolean> {
  const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isDirectory() || !(await exists(join(root, e.name, 'memory.max')))) continue;
    return exists(join(root, e.name, 'memory.swap.max'));
  }
  return false;
}

export async function hostCgroups(
  root = '/sys/fs/cgroup',
  hugepagesDir = '/sys/kernel/mm/hugepages',
): Promise<HostCgroups> {
  const sizes = await hugepageSizes(hugepagesDir);
  const controllers = await readFile(join(root, 'cgroup.controllers'), 'utf8').catch(() => undefined);
  if (controllers !== undefined) {
    const list = controllers.trim().split(/\s+/);
    return {
      version: 2,
      swap: list.includes('memory') && (await v2SwapFiles(root)),
      hugetlb: list.includes('hugetlb'),
      hugepageSizes: sizes,
    };
  }
  return {
    version: 1,
    swap: await exists(join(root, 'memory', 'memory.memsw.limit_in_bytes')),
    hugetlb: await exists(join(root, 'hugetlb')),
    hugepageSizes: sizes,
  };
}
