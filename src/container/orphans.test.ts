import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgedEntry, HostProcess, OrphanKind, OrphanPass } from '../util/orphans.js';
import {
  ContainerOrphans,
  isConmonFor,
  type ContainerOrphanHost,
  type ContainerOrphanSettings,
} from './orphans.js';

const NOW = 1_000_000_000;
const OLD = NOW - 3_600_000;
const YOUNG = NOW - 1_000;
const id = (c: string): string => c.repeat(64);

const S: ContainerOrphanSettings = {
  runtimePath: '/usr/sbin/runc',
  runtimeRoot: '/r/runc',
  systemdCgroup: false,
  bundlesDir: '/r/bundles',
  containersDir: '/l/containers',
  exitsDir: '/r/exits',
  attachDir: '/r/attach',
  execDir: '/r/exec',
};

const conmon = (pid: number, cid: string, startedAtMs: number, extra: string[] = []): HostProcess => ({
  pid,
  startedAtMs,
  argv: [
    '/usr/bin/conmon',
    '-b',
    `${S.bundlesDir}/${cid}`,
    '-c',
    cid,
    '--runtime-arg',
    `--root=${S.runtimeRoot}`,
    ...extra,
  ],
});

const entry = (dir: string, name: string, mtimeMs: number, isDirectory = true): AgedEntry => ({
  name,
  path: `${dir}/${name}`,
  mtimeMs,
  isDirectory,
});

class FakeHost implements ContainerOrphanHost {
  readonly actions: string[] = [];
  procs: HostProcess[] = [];
  /** pid → argv now (a reused pid has another). */
  argvNow = new Map<number, string[]>();
  dirs = new Map<string, AgedEntry[]>();
  mountPoints: string[] = [];

  conmons(root: string): Promise<HostProcess[]> {
    return Promise.resolve(this.procs.filter((p) => isConmonFor(p.argv, root)));
  }
  argvOf(pid: number): Promise<string[] | undefined> {
    return Promise.resolve(this.argvNow.get(pid) ?? this.procs.find((p) => p.pid === pid)?.argv);
  }
  kill(pid: number): void {
    this.actions.push(`kill ${pid}`);
    this.procs = this.procs.filter((p) => p.pid !== pid);
  }
  runcDelete(cid: string): Promise<void> {
    this.actions.push(`runc delete ${cid.slice(0, 3)}`);
    return Promise.resolve();
  }
  mounts(dirs: readonly string[]): Promise<string[]> {
    return Promise.resolve(
      this.mountPoints.filter((m) => dirs.some((d) => m === d || m.startsWith(`${d}/`))),
    );
  }
  unmount(path: string): Promise<void> {
    this.actions.push(`umount ${path}`);
    this.mountPoints = this.mountPoints.filter((m) => m !== path);
    return Promise.resolve();
  }
  entries(dir: string): Promise<AgedEntry[]> {
    return Promise.resolve(this.dirs.get(dir) ?? []);
  }
  removeTree(path: string): Promise<void> {
    this.actions.push(`rm ${path}`);
    return Promise.resolve();
  }
}

function pass(
  graceMs: number,
): OrphanPass & { removed: OrphanPass['removed']; log: [OrphanKind, string][]; failures: string[] } {
  const log: [OrphanKind, string][] = [];
  const failures: string[] = [];
  return {
    log,
    failures,
    isOld: (mtimeMs) => NOW - mtimeMs >= graceMs,
    removed: (kind, what) => log.push([kind, what]),
    failed: (kind, what) => failures.push(`${kind} ${what}`),
  };
}

describe('ContainerOrphans', () => {
  it("reaps an unknown container's conmon, runc state, mounts, dirs and files; leaves known ones alone", async () => {
    const host = new FakeHost();
    const [a, b] = [id('a'), id('b')]; // a: in the store; b: not
    host.procs = [
      conmon(10, a, OLD),
      conmon(11, b, OLD),
      {
        pid: 12,
        startedAtMs: OLD,
        argv: ['/usr/bin/conmon', '-c', b, '--runtime-arg', '--root=/other/runc'],
      },
    ];
    host.dirs.set(S.runtimeRoot, [entry(S.runtimeRoot, a, OLD), entry(S.runtimeRoot, b, OLD)]);
    host.dirs.set(S.bundlesDir, [
      entry(S.bundlesDir, a, OLD),
      entry(S.bundlesDir, b, OLD),
      entry(S.bundlesDir, 'not-an-id', OLD),
    ]);
    host.dirs.set(S.containersDir, [entry(S.containersDir, b, OLD)]);
    host.dirs.set(S.exitsDir, [entry(S.exitsDir, b, OLD, false), entry(S.exitsDir, a, OLD, false)]);
    host.dirs.set(S.attachDir, [entry(S.attachDir, b, OLD, false)]);
    host.mountPoints = [
      `${S.bundlesDir}/${a}/rootfs`,
      `${S.bundlesDir}/${b}/rootfs`,
      `${S.containersDir}/${b}/image-volumes/0`,
      `${S.containersDir}/${b}/idmapped/0`,
    ];
    const p = pass(60_000);
    await new ContainerOrphans(S, { containerIds: () => new Set([a]), host }).collect(p);
    assert.deepEqual(host.actions, [
      'kill 11',
      'runc delete bbb',
      `umount ${S.bundlesDir}/${b}/rootfs`,
      `umount ${S.containersDir}/${b}/image-volumes/0`,
      `umount ${S.containersDir}/${b}/idmapped/0`,
      `rm ${S.bundlesDir}/${b}`,
      `rm ${S.containersDir}/${b}`,
      `rm ${S.exitsDir}/${b}`,
      `rm ${S.attachDir}/${b}`,
    ]);
    assert.deepEqual(
      p.log.map(([k]) => k),
      ['conmon', 'runc', 'mount', 'mount', 'mount', 'bundle', 'container_dir', 'exit_file', 'attach'],
    );
    assert.deepEqual(p.failures, []);
  });

  it('a periodic pass leaves young leftovers for later; the start-up pass (no grace) takes them', async () => {
    const host = new FakeHost();
    const c = id('c');
    host.procs = [conmon(20, c, YOUNG)];
    host.dirs.set(S.runtimeRoot, [entry(S.runtimeRoot, c, YOUNG)]);
    host.dirs.set(S.bundlesDir, [entry(S.bundlesDir, c, YOUNG)]);
    host.mountPoints = [`${S.bundlesDir}/${c}/rootfs`];
    const periodic = pass(60_000);
    await new ContainerOrphans(S, { containerIds: () => new Set(), host }).collect(periodic);
    assert.deepEqual(host.actions, []);
    const startup = pass(0);
    await new ContainerOrphans(S, { containerIds: () => new Set(), host }).collect(startup);
    assert.deepEqual(host.actions, [
      'kill 20',
      'runc delete ccc',
      `umount ${S.bundlesDir}/${c}/rootfs`,
      `rm ${S.bundlesDir}/${c}`,
    ]);
  });

  it('reads the store after listing: a container created meanwhile is not touched', async () => {
    const host = new FakeHost();
    const d = id('d');
    const known = new Set<string>();
    host.procs = [conmon(30, d, OLD)];
    host.dirs.set(S.bundlesDir, [entry(S.bundlesDir, d, OLD)]);
    // The record is committed (before the process exists) by the time the store is read.
    const orphans = new ContainerOrphans(S, {
      containerIds: () => {
        known.add(d);
        return known;
      },
      host,
    });
    await orphans.collect(pass(0));
    assert.deepEqual(host.actions, []);
  });

  it('never kills a pid that now runs something else, nor removes a dir with a mount left below it', async () => {
    const host = new FakeHost();
    const e = id('e');
    host.procs = [conmon(40, e, OLD)];
    host.argvNow.set(40, ['/usr/bin/sleep', '100']);
    host.dirs.set(S.containersDir, [entry(S.containersDir, e, OLD)]);
    host.mountPoints = [`${S.containersDir}/${e}/idmapped-volumes/0`];
    host.unmount = (path) => {
      host.actions.push(`umount ${path} (busy)`);
      return Promise.reject(new Error('target is busy'));
    };
    const p = pass(0);
    await new ContainerOrphans(S, { containerIds: () => new Set(), host }).collect(p);
    assert.deepEqual(host.actions, [`umount ${S.containersDir}/${e}/idmapped-volumes/0 (busy)`]);
    assert.deepEqual(p.failures, [
      `mount ${S.containersDir}/${e}/idmapped-volumes/0`,
      `container_dir ${S.containersDir}/${e}`,
    ]);
  });

  it('removes exec session dirs that no live conmon refers to and are old', async () => {
    const host = new FakeHost();
    const a = id('a');
    host.procs = [conmon(50, a, OLD, ['--exec-process-spec', `${S.execDir}/exec-live/process.json`])];
    host.dirs.set(S.execDir, [
      entry(S.execDir, 'exec-live', OLD),
      entry(S.execDir, 'exec-stale', OLD),
      entry(S.execDir, 'stream-young', YOUNG),
      entry(S.execDir, 'other', OLD),
    ]);
    const p = pass(60_000);
    await new ContainerOrphans(S, { containerIds: () => new Set([a]), host }).collect(p);
    assert.deepEqual(host.actions, [`rm ${S.execDir}/exec-stale`]);
    assert.deepEqual(p.log, [['exec_dir', `${S.execDir}/exec-stale`]]);
  });
});
