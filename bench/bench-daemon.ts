/**
 * The daemon a bench runs against, started as the e2e tests start it: its own temp dirs, a real
 * docker-registry serving the project's busybox image, and bin/crisp at the default log level.
 * Also the cleanup after a run: steps that report instead of throwing, the removal of every pod,
 * and the check that no process, mount or cgroup of the run is left.
 */
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { message } from './measure.js';
import { connectCri, type CriClients } from '../test/e2e/harness/cri-client.js';
import {
  crispBin,
  makeTestDirs,
  removeTestDirs,
  spawnCrisp,
  writeTestConfig,
  type RunningCrisp,
  type TestDirs,
} from '../test/e2e/harness/daemon.js';
import { startRegistry, type TestRegistry } from '../test/e2e/harness/registry.js';
import { busyboxImage } from '../test/e2e/harness/test-images.js';

/** Writes registries.conf (the test registry, insecure) and the daemon's config pointing at it. */
export async function writeBenchConfig(dirs: TestDirs, registryHost: string): Promise<void> {
  const registriesConf = join(dirs.base, 'registries.conf');
  await writeFile(registriesConf, `[[registry]]\nlocation = "${registryHost}"\ninsecure = true\n`);
  // Debug logging would measure the logger; bench at the default level.
  await writeTestConfig(dirs, {
    logLevel: 'info',
    extraToml: `[image]\nregistries_config = ${JSON.stringify(registriesConf)}`,
  });
}

/** SIGINT / SIGTERM during a run: noted, so the bench stops at its next check and still cleans up. */
export class Interrupts {
  interrupted = false;
  private readonly onSignal = (): void => {
    this.interrupted = true;
  };

  constructor() {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  check(): void {
    if (this.interrupted) throw new Error('interrupted');
  }

  release(): void {
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
  }
}

/** Cleanup steps: a step that fails is noted in `errors` and the cleanup goes on. */
export class Cleanup {
  readonly errors: string[] = [];

  readonly step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      this.errors.push(`${what}: ${message(err)}`);
    }
  };

  /** The last lines of a report: what the cleanup found, then the failure, if any. */
  print(failure: unknown): void {
    if (this.errors.length > 0) {
      console.log(`cleanup problems:\n  ${this.errors.join('\n  ')}`);
      process.exitCode = 1;
    } else {
      console.log('cleanup: all pods removed, no process, mount or cgroup of this run left');
    }
    if (failure !== undefined) {
      console.error('bench failed:', failure);
      process.exitCode = 1;
    }
  }
}

/** Every process's argv (those that vanish while reading are skipped). */
export async function processes(): Promise<{ pid: number; argv: string[] }[]> {
  const out: { pid: number; argv: string[] }[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmd !== '') out.push({ pid: Number(name), argv: cmd.split('\0').filter((a) => a !== '') });
  }
  return out;
}

/** Stops and removes every pod the daemon lists, each a cleanup step; returns how many it listed. */
export async function removeAllPods(c: CriClients, cleanup: Cleanup, callTimeoutMs: number): Promise<number> {
  const pods = (await c.runtime.ListPodSandbox({})).items;
  for (const p of pods) {
    await cleanup.step(`remove pod ${p.id}`, async () => {
      await c.runtime.StopPodSandbox({ pod_sandbox_id: p.id }, callTimeoutMs);
      await c.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, callTimeoutMs);
    });
  }
  return pods.length;
}

/** What the bench made, to look for after the cleanup. */
export interface RunTraces {
  /** Pod and container ids: a cgroup crisp/<id> of any of them must be gone. */
  createdIds: Set<string>;
  /** Pause process pids: none may still run catatonit. */
  infraPids?: Set<number>;
}

/** The daemon as a bench uses it once started. */
export interface StartedDaemon {
  dirs: TestDirs;
  crisp: RunningCrisp;
  cri: CriClients;
  /** The busybox image in the registry, already pulled. */
  image: string;
  /** A dir for the pods' log directories. */
  logDir: string;
}

/**
 * The temp dirs, registry, daemon and CRI connection of one run, kept as they are made, so that
 * stop() removes whatever a failed start got to.
 */
export class BenchDaemon {
  private dirs: TestDirs | undefined;
  private registry: TestRegistry | undefined;
  private crisp: RunningCrisp | undefined;
  private cri: CriClients | undefined;

  /** Makes the temp dirs (`prefix`), pushes busybox, starts crisp, connects, pulls busybox. */
  async start(prefix: string, callTimeoutMs: number): Promise<StartedDaemon> {
    const dirs = await makeTestDirs(prefix);
    this.dirs = dirs;
    const registry = await startRegistry();
    this.registry = registry;
    await registry.push('bench/busybox', '1', await busyboxImage());
    const image = `${registry.host}/bench/busybox:1`;
    await writeBenchConfig(dirs, registry.host);
    // startCrisp, but a spawn failure (no bin/crisp) becomes an error here, not an 'error' event
    // nobody listens to, which would end the process before the cleanup.
    const crisp = spawnCrisp(dirs);
    this.crisp = crisp;
    const spawnFailed = new Promise<never>((_, reject) => {
      crisp.child.once('error', (err) => {
        reject(new Error(`cannot start ${crispBin}: ${err.message}`));
      });
    });
    spawnFailed.catch(() => undefined);
    await Promise.race([crisp.ready(), spawnFailed]);
    const cri = await connectCri(dirs.socket);
    this.cri = cri;
    await cri.image.PullImage({ image: { image } }, callTimeoutMs);
    return { dirs, crisp, cri, image, logDir: join(dirs.base, 'logs') };
  }

  /**
   * SIGKILLs the daemon and starts it again on the same dirs (what a crash and a restart do);
   * resolves once the new one serves, with the time from its spawn to its ready line.
   */
  async killAndRestart(): Promise<{ crisp: RunningCrisp; cri: CriClients; spawnToReadyMs: number }> {
    const dirs = this.dirs;
    if (!dirs || !this.crisp) throw new Error('the daemon was never started');
    this.cri?.close();
    this.cri = undefined;
    await this.crisp.kill();
    const t0 = performance.now();
    const crisp = spawnCrisp(dirs);
    this.crisp = crisp;
    await crisp.ready(120_000);
    const spawnToReadyMs = performance.now() - t0;
    const cri = await connectCri(dirs.socket);
    this.cri = cri;
    return { crisp, cri, spawnToReadyMs };
  }

  /** The CRI clients while the daemon runs: undefined when it never started or has exited. */
  get liveCri(): CriClients | undefined {
    const cr = this.crisp;
    return cr?.child.pid !== undefined && cr.child.exitCode === null ? this.cri : undefined;
  }

  /**
   * Closes the connection, stops crisp and the registry, removes the temp dirs and then looks for
   * what is left of the run: each a cleanup step.
   */
  async stop(cleanup: Cleanup, traces: RunTraces): Promise<void> {
    this.cri?.close();
    const cr = this.crisp;
    // A child that never started has no pid and never emits 'exit': nothing to stop.
    if (cr?.child.pid !== undefined) await cleanup.step('stop crisp', () => cr.stop());
    const reg = this.registry;
    if (reg !== undefined) await cleanup.step('stop registry', () => reg.stop());
    const ds = this.dirs;
    if (ds !== undefined) {
      await cleanup.step('remove temp dirs', () => removeTestDirs(ds));
      await cleanup.step('check leftovers', () => findLeftovers(ds.base, traces, cleanup.errors));
    }
  }
}

/** What is left of a run below `dir`: processes, mounts, cgroups; each kind a line in `problems`. */
async function findLeftovers(dir: string, traces: RunTraces, problems: string[]): Promise<void> {
  const infraPids = traces.infraPids ?? new Set<number>();
  const live = [];
  for (const p of await processes()) {
    if (!p.argv.some((a) => a.includes(dir)) && !infraPids.has(p.pid)) continue;
    // A recorded pause pid may have been reused by something else since.
    if (infraPids.has(p.pid) && !(p.argv[0] ?? '').includes('catatonit')) continue;
    live.push(`${p.pid} ${p.argv.join(' ').slice(0, 120)}`);
  }
  if (live.length > 0) problems.push(`processes left: ${live.join('; ')}`);
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
  if (mounts.length > 0) problems.push(`mounts left: ${mounts.join(', ')}`);
  const cgroups: string[] = [];
  const controllers = await readdir('/sys/fs/cgroup').catch(() => [] as string[]);
  for (const ctl of ['', ...controllers]) {
    for (const id of traces.createdIds) {
      const path = join('/sys/fs/cgroup', ctl, 'crisp', id);
      if (
        await stat(path).then(
          () => true,
          () => false,
        )
      )
        cgroups.push(path);
    }
  }
  if (cgroups.length > 0) problems.push(`cgroups left: ${cgroups.join(', ')}`);
}
