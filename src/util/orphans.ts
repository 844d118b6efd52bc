/**
 * The shared vocabulary of orphan collection (docs/gc.md): what kinds of leftovers there are,
 * what one collector gets for a pass, and small readers of the host's state (processes, mounts,
 * directory entries with their ages) that collectors in several layers use. Imports nothing of
 * crisp's: each layer's collector lives beside the code that makes what it collects.
 *
 * The rule every collector follows: list what is on disk or in the kernel FIRST, then take the
 * store's ids, and reap only what is absent from that later snapshot AND old enough (or found at
 * start-up, before crisp serves any request). Records are committed before their side effects
 * and deleted after them, so anything listed before the snapshot whose id the snapshot lacks is
 * either a leftover or already being removed by its owner (both ends are idempotent).
 */
import { lstat, readFile, readdir, rm } from 'node:fs/promises';
import { errnoCode, readdirIfExists } from './errno.js';
import { readMountInfo } from './mountinfo.js';
import { CLK_TCK, bootTimeNs, processArgv, startTicksOf } from './proc.js';
import { join } from 'node:path';

export const ORPHAN_KINDS = [
  'conmon',
  'runc',
  'mount',
  'netns',
  'cni_cache',
  'ipam',
  'bundle',
  'container_dir',
  'exec_dir',
  'exit_file',
  'attach',
  'pod_dir',
  'blob',
  'layer',
  'tmp',
] as const;
export type OrphanKind = (typeof ORPHAN_KINDS)[number];

/** A crisp id (pods, containers): 64 lowercase hex. Collectors consider only entries named so. */
export const CRISP_ID_RE = /^[0-9a-f]{64}$/;

/** One pass of one collector. */
export interface OrphanPass {
  /** Whether something last changed at `mtimeMs` (or started then) is old enough to reap. */
  isOld(mtimeMs: number): boolean;
  /** Reports a removal: logged (kind, what) and counted in crisp_orphans_cleaned_total{kind}. */
  removed(kind: OrphanKind, what: string, fields?: Record<string, unknown>): void;
  /** Reports a failure to remove something; it is tried again on the next pass. */
  failed(kind: OrphanKind, what: string, err: unknown): void;
}

export interface OrphanCollector {
  /** For logs: which collector failed. */
  readonly name: string;
  collect(pass: OrphanPass): Promise<void>;
}

/**
 * Removes one orphan and reports it to `pass`: `removed` (with `fields`) once `remove` is done,
 * `failed` if it throws (the next pass tries again). Whether it was removed.
 */
export async function reap(
  pass: OrphanPass,
  kind: OrphanKind,
  what: string,
  remove: () => Promise<void> | void,
  fields?: Record<string, unknown>,
): Promise<boolean> {
  try {
    await remove();
    pass.removed(kind, what, fields);
    return true;
  } catch (err) {
    pass.failed(kind, what, err);
    return false;
  }
}

/** An entry of a directory with its mtime (lstat: a symlink is not followed). */
export interface AgedEntry {
  name: string;
  path: string;
  mtimeMs: number;
  isDirectory: boolean;
}

/** The entries of `dir` (none when it does not exist), each with its lstat mtime. */
export async function agedEntries(dir: string): Promise<AgedEntry[]> {
  const names = await readdirIfExists(dir);
  const out: AgedEntry[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    try {
      const st = await lstat(path);
      out.push({ name, path, mtimeMs: st.mtimeMs, isDirectory: st.isDirectory() });
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err; // gone meanwhile
    }
  }
  return out;
}

/**
 * Temp files of atomic writes (write to a temp name, then rename) that a crash left: the files
 * of `entries` named like `pattern` and old enough, each removed (`rm -f` unless `opts.remove`)
 * and reported as 'tmp' (with `opts.fields`).
 */
export async function reapTempFiles(
  pass: OrphanPass,
  entries: readonly AgedEntry[],
  pattern: RegExp,
  opts: { remove?: (path: string) => Promise<void>; fields?: Record<string, unknown> } = {},
): Promise<void> {
  const remove = opts.remove ?? ((path: string) => rm(path, { force: true }));
  for (const e of entries) {
    if (e.isDirectory || !pattern.test(e.name) || !pass.isOld(e.mtimeMs)) continue;
    await reap(pass, 'tmp', e.path, () => remove(e.path), opts.fields);
  }
}

/** A process as /proc shows it. */
export interface HostProcess {
  pid: number;
  argv: string[];
  /** When it started (ms since the epoch), from /proc/<pid>/stat and the boot time. */
  startedAtMs: number;
}

/**
 * Every process whose argv matches `filter` (checked on the command line before anything else
 * is read). Processes that end while being read are skipped.
 */
export async function listProcesses(filter: (argv: readonly string[]) => boolean): Promise<HostProcess[]> {
  const boot = Number((await bootTimeNs()) / 1_000_000n);
  const out: HostProcess[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const argv = await processArgv(pid); // undefined: gone, a kernel thread or a zombie
    if (argv === undefined || !filter(argv)) continue;
    try {
      const ticks = startTicksOf(await readFile(`/proc/${name}/stat`, 'utf8'));
      if (ticks === undefined) continue;
      out.push({ pid, argv, startedAtMs: boot + (ticks * 1000) / CLK_TCK });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The value after `flag` in argv (`-c ID`), or after `flag=` (`--root=DIR`). */
export function argValue(argv: readonly string[], flag: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === flag) return argv[i + 1];
    if (a.startsWith(`${flag}=`)) return a.slice(flag.length + 1);
  }
  return undefined;
}

/** Mount points at or below any of `dirs` (from /proc/self/mountinfo), deepest first. */
export async function mountPointsUnder(dirs: readonly string[]): Promise<string[]> {
  const points = new Set<string>();
  for (const { mountPoint: point } of await readMountInfo()) {
    if (dirs.some((d) => point === d || point.startsWith(`${d}/`))) points.add(point);
  }
  return [...points].sort((a, b) => b.length - a.length || a.localeCompare(b));
}

/** How a tree is checked for mounts and removed (replaced by fakes in tests). */
export interface TreeOps {
  mounts(dirs: readonly string[]): Promise<string[]>;
  removeTree(path: string): Promise<void>;
}

const hostTreeOps: TreeOps = {
  mounts: mountPointsUnder,
  removeTree: (path) => rm(path, { recursive: true, force: true }),
};

/**
 * `rm -r` of `path`, refused while anything is mounted at or below it (rm would cross into the
 * mount and delete what it shows).
 */
export async function removeUnmountedTree(path: string, ops: TreeOps = hostTreeOps): Promise<void> {
  const left = await ops.mounts([path]);
  if (left.length > 0) throw new Error(`still mounted below it: ${left.join(', ')}`);
  await ops.removeTree(path);
}

/** The first path segment of `path` below `dir` (`<dir>/<id>/...` → id), or undefined. */
export function childOf(dir: string, path: string): string | undefined {
  if (!path.startsWith(`${dir}/`)) return undefined;
  const rest = path.slice(dir.length + 1);
  const seg = rest.split('/')[0];
  return seg === '' ? undefined : seg;
}
