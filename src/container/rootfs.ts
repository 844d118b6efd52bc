/**
 * A container's root filesystem: an overlay of its image's unpacked layers (read-only, shared
 * with every container of the image) under the container's own upper and work directories.
 * Mounted at init, unmounted at cleanup. mount(8) and umount(8) do the work (Node has no
 * mount(2)); lowerdir paths are given relative to the layer store, with mount's cwd there, so
 * that deep images still fit the kernel's one-page option limit.
 */
import { chown, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommandError } from '../errors.js';
import { CommandFailure, runCommand } from '../util/command.js';
import { readMountInfo } from '../util/mountinfo.js';

export interface RootfsPaths {
  /** The container's persistent dir: upper and work live here. */
  containerDir: string;
  /** Where the merged root is mounted (inside the bundle). */
  target: string;
}

async function run(file: string, args: string[], cwd?: string): Promise<void> {
  try {
    await runCommand(file, args, { timeoutMs: 60_000, ...(cwd ? { cwd } : {}) });
  } catch (err) {
    if (err instanceof CommandFailure)
      throw new CommandError(file, err.exitCode, err.stderrTail, { cause: err });
    throw err;
  }
}

/** Whether `target` is a mount point right now (from /proc/self/mountinfo). */
export async function isMounted(target: string): Promise<boolean> {
  return (await readMountInfo()).some((e) => e.mountPoint === target);
}

/** `layerDirs` top layer first, as overlayfs wants them. */
export async function mountRootfs(
  layerDirs: string[],
  layersRoot: string,
  paths: RootfsPaths,
): Promise<void> {
  const upper = join(paths.containerDir, 'upper');
  const work = join(paths.containerDir, 'work');
  await mkdir(upper, { recursive: true, mode: 0o755 });
  await mkdir(work, { recursive: true, mode: 0o700 });
  await mkdir(paths.target, { recursive: true, mode: 0o755 });
  if (await isMounted(paths.target)) return;
  const lower = layerDirs.map((d) => relative(layersRoot, d)).join(':');
  await run(
    'mount',
    ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, paths.target],
    layersRoot,
  );
}

/** One range of a user namespace's id map (OCI LinuxIDMapping). */
export interface IdMapping {
  containerId: number;
  hostId: number;
  size: number;
}

/** The uid and gid maps of a pod's user namespace. */
export interface IdMaps {
  uids: readonly IdMapping[];
  gids: readonly IdMapping[];
}

/** crisp's helper for id-mapped mounts (bin/crisp-idmap-mount, beside bin/crisp). */
export const IDMAP_HELPER = fileURLToPath(new URL('../../../bin/crisp-idmap-mount', import.meta.url));

/** crisp's helper for recursively read-only mounts (bin/crisp-rro-mount). */
export const RRO_HELPER = fileURLToPath(new URL('../../../bin/crisp-rro-mount', import.meta.url));

/** The host id that `id` inside the namespace is, or undefined when the maps do not cover it. */
export function hostIdOf(maps: readonly IdMapping[], id: number): number | undefined {
  const m = maps.find((r) => id >= r.containerId && id < r.containerId + r.size);
  return m === undefined ? undefined : m.hostId + (id - m.containerId);
}

function mapArg(maps: readonly IdMapping[]): string {
  return maps.map((m) => `${m.containerId}:${m.hostId}:${m.size}`).join(',');
}

/**
 * An id-mapped bind mount of `source` (a directory or a file) at `target` (made if missing, of the
 * same kind), through the helper. Mounts below `source` are not carried over.
 */
export async function idmapMount(
  source: string,
  target: string,
  maps: IdMaps,
  helper = IDMAP_HELPER,
): Promise<void> {
  if ((await stat(source)).isDirectory()) {
    await mkdir(target, { recursive: true, mode: 0o755 });
  } else {
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    await writeFile(target, '', { flag: 'a', mode: 0o644 });
  }
  if (await isMounted(target)) return;
  await run(helper, [mapArg(maps.uids), mapArg(maps.gids), source, target]);
}

/**
 * The root of a container in a user namespace: each layer id-mapped (so the image's root-owned
 * files are root's inside the namespace) at `<containerDir>/idmapped/<n>`, under an overlay
 * whose upper directory belongs to the namespace's root, so the container's root can write `/`.
 * lowerdir is relative to the container directory, to stay within the option size limit.
 */
export async function mountIdmappedRootfs(
  layerDirs: string[],
  paths: RootfsPaths,
  maps: IdMaps,
  helper = IDMAP_HELPER,
): Promise<void> {
  const upper = join(paths.containerDir, 'upper');
  const work = join(paths.containerDir, 'work');
  await mkdir(upper, { recursive: true, mode: 0o755 });
  await mkdir(work, { recursive: true, mode: 0o700 });
  const rootUid = hostIdOf(maps.uids, 0);
  const rootGid = hostIdOf(maps.gids, 0);
  if (rootUid !== undefined && rootGid !== undefined) await chown(upper, rootUid, rootGid);
  await mkdir(paths.target, { recursive: true, mode: 0o755 });
  if (await isMounted(paths.target)) return;
  const lowers: string[] = [];
  for (const [i, dir] of layerDirs.entries()) {
    const at = join(paths.containerDir, 'idmapped', String(i));
    await idmapMount(dir, at, maps, helper);
    lowers.push(relative(paths.containerDir, at));
  }
  await run(
    'mount',
    [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work}`,
      paths.target,
    ],
    paths.containerDir,
  );
}

/** Where a container's id-mapped volume `index` (CRI Mount with uid/gid mappings) is mounted. */
export function idmappedVolumePath(containerDir: string, index: number): string {
  return join(containerDir, 'idmapped-volumes', String(index));
}

/** Unmounts the id-mapped layers and volumes of a container (after its root; tolerating none). */
export async function unmountIdmappedLayers(containerDir: string): Promise<void> {
  for (const base of [join(containerDir, 'idmapped'), join(containerDir, 'idmapped-volumes')]) {
    const entries = await readdir(base).catch(() => [] as string[]);
    for (const name of entries.filter((n) => /^\d+$/.test(n))) await unmountRootfs(join(base, name));
  }
}

/** Unmounts the merged root (tolerating "not mounted"). */
export async function unmountRootfs(target: string): Promise<void> {
  if (!(await isMounted(target))) return;
  await run('umount', [target]);
}

/** Removes the container's upper and work dirs (after unmount). */
export async function removeRootfsStorage(containerDir: string): Promise<void> {
  await rm(containerDir, { recursive: true, force: true });
}

/**
 * Image volumes (CRI Mount.image): another image's layers as a read-only overlay at
 * `<containerDir>/image-volumes/<index>`, bound into the container from there. An empty directory
 * is the bottom layer, since overlayfs needs two lower layers when there is no upper one.
 * Returns the mount point.
 */
export async function mountImageVolume(
  layerDirs: string[],
  layersRoot: string,
  containerDir: string,
  index: number,
): Promise<string> {
  const base = join(containerDir, 'image-volumes');
  const empty = join(base, 'empty');
  const target = join(base, String(index));
  await mkdir(empty, { recursive: true, mode: 0o755 });
  await mkdir(target, { recursive: true, mode: 0o755 });
  if (await isMounted(target)) return target;
  const lower = [...layerDirs.map((d) => relative(layersRoot, d)), empty].join(':');
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lower}`, target], layersRoot);
  return target;
}

/** Unmounts every image volume of the container (tolerating none). */
export async function unmountImageVolumes(containerDir: string): Promise<void> {
  const base = join(containerDir, 'image-volumes');
  const entries = await readdir(base).catch(() => [] as string[]);
  for (const name of entries.filter((n) => /^\d+$/.test(n))) await unmountRootfs(join(base, name));
}

/**
 * Whether id-mapped mounts work here (kernel, helper and python3 alike): maps a scratch
 * directory under `scratch` through 0 → 65536 and checks that its root-owned file then shows as
 * 65536. Everything it makes is removed again.
 */
export async function idmappedMountsWork(scratch: string, helper = IDMAP_HELPER): Promise<boolean> {
  const dir = join(scratch, 'idmap-probe');
  const source = join(dir, 'source');
  const target = join(dir, 'target');
  const id = 65536;
  try {
    await mkdir(source, { recursive: true, mode: 0o700 });
    await writeFile(join(source, 'file'), '');
    await idmapMount(
      source,
      target,
      { uids: [{ containerId: 0, hostId: id, size: 1 }], gids: [{ containerId: 0, hostId: id, size: 1 }] },
      helper,
    );
    return (await stat(join(target, 'file'))).uid === id;
  } catch {
    return false;
  } finally {
    await unmountRootfs(target).catch(() => undefined);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
