/**
 * A container's root filesystem: an overlay of its image's unpacked layers (read-only, shared
 * with every container of the image) under the container's own upper and work directories.
 * Mounted at init, unmounted at cleanup. mount(8) and umount(8) do the work (Node has no
 * mount(2)); lowerdir paths are given relative to the layer store, with mount's cwd there, so
 * that deep images still fit the kernel's one-page option limit.
 */
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { CommandError } from '../errors.js';
import { CommandFailure, runCommand } from '../util/command.js';

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
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const escaped = target.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return info.split('\n').some((line) => line.split(' ')[4] === escaped);
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
