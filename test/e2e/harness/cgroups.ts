/** The node's cgroups as the tests read them, to compare with what crisp reports or sets. */
import { access, readFile, readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';

export const CGROUP_ROOT = '/sys/fs/cgroup';

/** Whether the node runs the unified (v2) hierarchy only. */
export const cgroupV2 = (): Promise<boolean> =>
  access(join(CGROUP_ROOT, 'cgroup.controllers')).then(
    () => true,
    () => false,
  );

/** The directory of `pid`'s cgroup for a v1 controller (or the v2 one), from /proc/<pid>/cgroup. */
export async function cgroupDir(pid: number, controller: string): Promise<string> {
  const text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
  const v2 = await cgroupV2();
  for (const line of text.split('\n')) {
    const [hier, names = '', ...rest] = line.split(':');
    const path = rest.join(':');
    if (v2 && hier === '0' && names === '') return join(CGROUP_ROOT, path);
    if (!v2 && names.split(',').includes(controller)) return join(CGROUP_ROOT, controller, path);
  }
  throw new Error(`no ${controller} cgroup for pid ${pid}:\n${text}`);
}

/** Cumulative CPU nanoseconds of a cgroup, as the kernel counts them. */
export async function kernelCpuNs(dir: string): Promise<bigint> {
  if (await cgroupV2()) {
    const line = (await readFile(join(dir, 'cpu.stat'), 'utf8'))
      .split('\n')
      .find((l) => l.startsWith('usage_usec '));
    return BigInt(line?.split(' ')[1] ?? '0') * 1000n;
  }
  return BigInt((await readFile(join(dir, 'cpuacct.usage'), 'utf8')).trim());
}

/**
 * Removes a test's own cgroup parent directories (`relative` paths, deepest first) from every
 * hierarchy, tolerating ones that were never made.
 */
export async function removeCgroupDirs(relative: readonly string[]): Promise<void> {
  const roots = (await cgroupV2())
    ? [CGROUP_ROOT]
    : (await readdir(CGROUP_ROOT, { withFileTypes: true }))
        .filter((d) => d.isDirectory())
        .map((d) => join(CGROUP_ROOT, d.name));
  for (const root of roots) {
    for (const dir of relative) {
      await rmdir(join(root, dir)).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      });
    }
  }
}
