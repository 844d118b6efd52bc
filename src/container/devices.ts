/**
 * Host device nodes a container gets (I/O; the spec builder takes the result as a resolved fact):
 * - the CRI `devices` of a container (device plugins: GPUs, FUSE, ...), each a device node or a
 *   directory of them on the host, placed at its container path with the cgroup access asked for;
 * - for a privileged container, every device node under the host's /dev (containerd's and
 *   CRI-O's behaviour), at the same path.
 *
 * Major and minor numbers, type, mode and owner come from the host node itself (stat, never a
 * guess), so the node runc creates in the container's /dev is the host's device.
 */
import type { BigIntStats } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import type { DeviceInput, OciDevice } from './spec-types.js';

/** A device node for the container, with the cgroup access it gets (some of `rwm`). */
export interface ResolvedDevice extends OciDevice {
  access: string;
}

/** Directories of /dev that hold no device nodes of their own (runc's list for host devices). */
const SKIPPED_DEV_DIRS: ReadonlySet<string> = new Set([
  'pts',
  'shm',
  'fd',
  'mqueue',
  '.lxc',
  '.lxd-mounts',
  '.udev',
]);

/** Linux dev_t → major and minor (the glibc encoding, 12+20 bits major, 20+12 bits minor). */
export function splitDevNumber(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/**
 * The cgroup access for a CRI device: some of r, w and m, each at most once ('' means all three,
 * as kubelet always sends them); anything else is an InvalidArgumentError naming the field.
 */
export function deviceAccess(permissions: string, field: string): string {
  if (permissions === '') return 'rwm';
  if (!/^[rwm]{1,3}$/.test(permissions) || new Set(permissions).size !== permissions.length) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(permissions)} is not a device permission: use some of r (read), w (write) and m (mknod), e.g. "rw"`,
    );
  }
  return permissions;
}

type NodeStat = BigIntStats;

function statNode(p: string): Promise<BigIntStats> {
  return stat(p, { bigint: true });
}

function deviceFrom(st: NodeStat, containerPath: string, access: string): ResolvedDevice | undefined {
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : undefined;
  if (type === undefined) return undefined;
  return {
    path: containerPath,
    type,
    ...splitDevNumber(st.rdev),
    fileMode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    access,
  };
}

/**
 * Every device node under `dir` (recursively, not following symlinks), as `containerDir` + the
 * same relative path. Entries that vanish while walking are skipped.
 */
async function devicesUnder(
  dir: string,
  containerDir: string,
  access: string,
  skip: ReadonlySet<string>,
): Promise<ResolvedDevice[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const found = await Promise.all(
    entries.map(async (e): Promise<ResolvedDevice[]> => {
      const host = path.join(dir, e.name);
      const inside = path.posix.join(containerDir, e.name);
      if (e.isDirectory()) {
        return skip.has(e.name) ? [] : devicesUnder(host, inside, access, new Set());
      }
      if (!e.isCharacterDevice() && !e.isBlockDevice()) return [];
      try {
        const d = deviceFrom(await statNode(host), inside, access);
        return d ? [d] : [];
      } catch {
        return [];
      }
    }),
  );
  return found.flat();
}

/**
 * A container's CRI devices: each host_path (symlinks resolved) is a device node, or a directory
 * whose device nodes all go in under container_path. A relative path, a missing host path, one
 * that holds no device, bad permissions or two devices at one container path are
 * InvalidArgumentErrors naming `config.devices[i]`.
 */
export async function resolveDevices(devices: readonly DeviceInput[]): Promise<ResolvedDevice[]> {
  const all = await Promise.all(
    devices.map(async (d, i): Promise<ResolvedDevice[]> => {
      const field = `config.devices[${i}]`;
      for (const [value, name] of [
        [d.containerPath, 'container_path'],
        [d.hostPath, 'host_path'],
      ] as const) {
        if (!value.startsWith('/')) {
          throw new InvalidArgumentError(
            `${field}.${name}`,
            `${JSON.stringify(value)} is not an absolute path`,
          );
        }
      }
      const access = deviceAccess(d.permissions, `${field}.permissions`);
      const containerPath = path.posix.normalize(d.containerPath).replace(/(.)\/+$/, '$1');
      let host: string;
      let st: NodeStat;
      try {
        host = await realpath(d.hostPath);
        st = await statNode(host);
      } catch (err) {
        throw new InvalidArgumentError(
          `${field}.host_path`,
          `"${d.hostPath}" does not exist on the node (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        );
      }
      if (st.isDirectory()) {
        const under = await devicesUnder(host, containerPath, access, new Set());
        if (under.length === 0) {
          throw new InvalidArgumentError(
            `${field}.host_path`,
            `directory "${d.hostPath}" holds no device nodes`,
          );
        }
        return under;
      }
      const one = deviceFrom(st, containerPath, access);
      if (!one) {
        throw new InvalidArgumentError(
          `${field}.host_path`,
          `"${d.hostPath}" is not a character or block device`,
        );
      }
      return [one];
    }),
  );
  const seen = new Map<string, number>();
  all.forEach((list, i) => {
    for (const d of list) {
      const other = seen.get(d.path);
      if (other !== undefined && other !== i) {
        throw new InvalidArgumentError(
          `config.devices[${i}].container_path`,
          `${JSON.stringify(d.path)} is also the container path of config.devices[${other}]`,
        );
      }
      seen.set(d.path, i);
    }
  });
  return all.flat();
}

/**
 * Every device node of the host's /dev (`root`), for a privileged container: pts, shm, mqueue
 * and fd are skipped (the container has its own), and so is /dev/console (a terminal container
 * gets its own console).
 */
export async function hostDevices(root = '/dev'): Promise<ResolvedDevice[]> {
  const found = await devicesUnder(root, '/dev', 'rwm', SKIPPED_DEV_DIRS);
  return found.filter((d) => d.path !== '/dev/console').sort((a, b) => a.path.localeCompare(b.path));
}
