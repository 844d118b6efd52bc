/**
 * Leftovers of containers the store does not know (docs/gc.md), found only under THIS crisp's
 * own directories:
 * - conmon processes whose command line carries this crisp's runc root
 *   (`--runtime-arg --root=<run_dir>/runc`), for a container id not in the store: SIGKILLed (after
 *   their command line is read again, so a reused pid is never hit), then the container is
 *   `runc delete --force`d. They are not crisp's children, so there is nothing to reap.
 * - runc state directories under the runc root: `runc delete --force`.
 * - mounts under `bundles/<id>/` (the rootfs overlay) and `containers/<id>/` (id-mapped layers,
 *   image volumes, id-mapped volumes): unmounted, deepest first.
 * - bundle directories, container directories, exit files and attach entries of unknown ids, and
 *   exec session directories (ExecSync, streaming exec) no live conmon refers to: removed, but a
 *   directory only once nothing is mounted below it (rm never crosses into a mount).
 * Only entries named like crisp ids (64 hex; exec dirs `exec-*` / `stream-*`) are considered.
 */
import { rm } from 'node:fs/promises';
import type { Logger } from '../log/logger.js';
import { Runc } from '../oci/runc.js';
import { CommandFailure, runCommand } from '../util/command.js';
import { errnoCode } from '../util/errno.js';
import { processArgv } from '../util/proc.js';
import {
  agedEntries,
  CRISP_ID_RE,
  argValue,
  childOf,
  listProcesses,
  mountPointsUnder,
  reap,
  removeUnmountedTree,
  type AgedEntry,
  type HostProcess,
  type OrphanCollector,
  type OrphanPass,
} from '../util/orphans.js';

const EXEC_DIR_RE = /^(exec|stream)-/;

export interface ContainerOrphanSettings {
  /** The default runtime's binary, for `delete --force` of containers the store does not know. */
  runtimePath: string;
  runtimeRoot: string;
  systemdCgroup: boolean;
  bundlesDir: string;
  containersDir: string;
  exitsDir: string;
  attachDir: string;
  execDir: string;
}

/** What the collector does to the host; replaced by fakes in tests. */
export interface ContainerOrphanHost {
  /** conmon processes started for this runc root. */
  conmons(runtimeRoot: string): Promise<HostProcess[]>;
  /** The current argv of `pid`, undefined when it is gone. */
  argvOf(pid: number): Promise<string[] | undefined>;
  kill(pid: number): void;
  runcDelete(id: string): Promise<void>;
  mounts(dirs: readonly string[]): Promise<string[]>;
  unmount(path: string): Promise<void>;
  entries(dir: string): Promise<AgedEntry[]>;
  removeTree(path: string): Promise<void>;
}

/** Whether `argv` is a conmon run for the runc root `root` (both create and exec conmons). */
export function isConmonFor(argv: readonly string[], root: string): boolean {
  return argv.some((a, i) => a === '--runtime-arg' && argv[i + 1] === `--root=${root}`);
}

function hostOps(settings: ContainerOrphanSettings, log: Logger): ContainerOrphanHost {
  const runc = new Runc({
    path: settings.runtimePath,
    root: settings.runtimeRoot,
    systemdCgroup: settings.systemdCgroup,
    log,
  });
  return {
    conmons: (root) => listProcesses((argv) => isConmonFor(argv, root)),
    argvOf: processArgv,
    kill: (pid) => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (err) {
        if (errnoCode(err) !== 'ESRCH') throw err;
      }
    },
    runcDelete: (id) => runc.delete(id, true),
    mounts: (dirs) => mountPointsUnder(dirs),
    unmount: async (path) => {
      try {
        await runCommand('umount', [path], { timeoutMs: 10_000 });
      } catch (err) {
        if (!(err instanceof CommandFailure)) throw err;
        // Busy (an open file of a process that is still going away): detach it now.
        await runCommand('umount', ['-l', path], { timeoutMs: 10_000 });
      }
    },
    entries: agedEntries,
    removeTree: (path) => rm(path, { recursive: true, force: true }),
  };
}

export class ContainerOrphans implements OrphanCollector {
  readonly name = 'containers';

  constructor(
    private readonly settings: ContainerOrphanSettings,
    private readonly deps: {
      /** Every container id in the store (infra containers included), read when asked. */
      containerIds(): ReadonlySet<string>;
      host: ContainerOrphanHost;
    },
  ) {}

  async collect(pass: OrphanPass): Promise<void> {
    const s = this.settings;
    const { host } = this.deps;
    // Everything is listed first, the store read last (util/orphans.ts).
    const conmons = await host.conmons(s.runtimeRoot);
    const runcDirs = (await host.entries(s.runtimeRoot)).filter(
      (e) => e.isDirectory && CRISP_ID_RE.test(e.name),
    );
    const mounts = await host.mounts([s.bundlesDir, s.containersDir]);
    const bundles = (await host.entries(s.bundlesDir)).filter((e) => CRISP_ID_RE.test(e.name));
    const containerDirs = (await host.entries(s.containersDir)).filter((e) => CRISP_ID_RE.test(e.name));
    const exits = (await host.entries(s.exitsDir)).filter((e) => CRISP_ID_RE.test(e.name));
    const attach = (await host.entries(s.attachDir)).filter((e) => CRISP_ID_RE.test(e.name));
    const execDirs = (await host.entries(s.execDir)).filter((e) => e.isDirectory && EXEC_DIR_RE.test(e.name));
    const known = this.deps.containerIds();
    const unknown = (id: string): boolean => !known.has(id);

    // 1. conmon processes, then runc's state (which kills whatever still runs in the container).
    const dead = new Set<string>();
    for (const p of conmons) {
      const id = argValue(p.argv, '-c');
      if (id === undefined || !CRISP_ID_RE.test(id) || !unknown(id) || !pass.isOld(p.startedAtMs)) continue;
      const now = await host.argvOf(p.pid);
      if (now?.join('\0') !== p.argv.join('\0')) continue; // ended, or the pid was reused
      const killed = await reap(
        pass,
        'conmon',
        `pid ${p.pid}`,
        () => {
          host.kill(p.pid);
        },
        { containerId: id, pid: p.pid },
      );
      if (killed) dead.add(id);
    }
    const runcIds = new Set(
      runcDirs.filter((e) => unknown(e.name) && pass.isOld(e.mtimeMs)).map((e) => e.name),
    );
    for (const id of new Set([...dead, ...runcIds])) {
      try {
        await host.runcDelete(id);
        if (runcIds.has(id)) pass.removed('runc', id, { containerId: id });
      } catch (err) {
        pass.failed('runc', id, err);
      }
    }

    // 2. Mounts of unknown containers, deepest first (the list is sorted so).
    const age = new Map<string, number>();
    for (const e of [...bundles, ...containerDirs])
      age.set(e.name, Math.max(age.get(e.name) ?? 0, e.mtimeMs));
    for (const point of mounts) {
      const id = childOf(s.bundlesDir, point) ?? childOf(s.containersDir, point);
      if (id === undefined || !CRISP_ID_RE.test(id) || !unknown(id)) continue;
      if (!dead.has(id) && !pass.isOld(age.get(id) ?? 0)) continue;
      await reap(pass, 'mount', point, () => host.unmount(point), { containerId: id });
    }

    // 3. Directories and files of unknown containers.
    const removeDir = async (kind: 'bundle' | 'container_dir' | 'exec_dir', e: AgedEntry): Promise<void> => {
      await reap(pass, kind, e.path, () => removeUnmountedTree(e.path, host));
    };
    const orphaned = (e: AgedEntry): boolean =>
      unknown(e.name) && (dead.has(e.name) || pass.isOld(e.mtimeMs));
    for (const e of bundles.filter(orphaned)) await removeDir('bundle', e);
    for (const e of containerDirs.filter(orphaned)) await removeDir('container_dir', e);
    for (const [kind, list] of [
      ['exit_file', exits],
      ['attach', attach],
    ] as const) {
      for (const e of list.filter(orphaned)) await reap(pass, kind, e.path, () => host.removeTree(e.path));
    }

    // 4. Exec session directories no live conmon refers to (its -b, -p, -l or spec path).
    const live = (await host.conmons(s.runtimeRoot)).flatMap((p) => p.argv);
    for (const e of execDirs) {
      if (!pass.isOld(e.mtimeMs)) continue;
      if (live.some((a) => a === e.path || a.startsWith(`${e.path}/`))) continue;
      await removeDir('exec_dir', e);
    }
  }
}

/** The collector over the real host. */
export function containerOrphans(
  settings: ContainerOrphanSettings,
  deps: { containerIds(): ReadonlySet<string>; log: Logger },
): ContainerOrphans {
  return new ContainerOrphans(settings, {
    containerIds: () => deps.containerIds(),
    host: hostOps(settings, deps.log),
  });
}
