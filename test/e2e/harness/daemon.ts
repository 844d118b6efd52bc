/**
 * Starts the real crisp binary (bin/crisp) for a test: its own temporary root dir, run dir,
 * socket, CNI config dir and an ephemeral metrics port, so it never collides with a crisp
 * already running on the machine. The JSON log lines are collected for assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { runCommand } from '../../../src/util/command.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const crispBin = fileURLToPath(new URL('../../../../bin/crisp', import.meta.url));

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface TestDirs {
  base: string;
  root: string;
  run: string;
  socket: string;
  cniConfDir: string;
  configFile: string;
  /**
   * The test daemon's own pod network: a bridge and a /24 of 10.85.0.0/16 that no other test
   * daemon uses at the same time, with host-local's leases under `base`.
   */
  network: { bridge: string; subnet: string; ipamDir: string };
}

export async function makeTestDirs(prefix = 'crisp-e2e-'): Promise<TestDirs> {
  const base = await mkdtemp(join(tmpdir(), prefix));
  // Searchable by others, as /run and /var/lib are: user-namespaced containers' runc works as an
  // unprivileged host id and must reach its bundle below here.
  await chmod(base, 0o711);
  const tag = randomBytes(3).toString('hex');
  return {
    network: {
      bridge: `crt${tag}`,
      subnet: `10.85.${100 + ((randomBytes(1)[0] ?? 0) % 150)}.0/24`,
      ipamDir: join(base, 'cni-ipam'),
    },
    base,
    root: join(base, 'root'),
    run: join(base, 'run'),
    socket: join(base, 'run', 'crisp.sock'),
    cniConfDir: join(base, 'cni'),
    configFile: join(base, 'crisp.toml'),
  };
}

export interface TestConfigOptions {
  /** Top-level TOML lines added to the config. */
  extraToml?: string;
  logLevel?: string;
  /** Defaults to an ephemeral loopback port; "" disables the endpoint. */
  metricsAddress?: string;
  /** false: no pod network config (NetworkReady false); default: the daemon's own bridge. */
  network?: boolean;
  /** More [network] keys (e.g. plugin_timeout_seconds = 2). */
  networkToml?: string;
}

/**
 * The test daemon's pod network as a conflist: a bridge (gateway, no masquerading: pods talk to
 * each other and the node only) with host-local IPAM on the daemon's own subnet.
 */
export function testConflist(dirs: TestDirs, extraPlugins: object[] = []): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'crisp-e2e',
    plugins: [
      {
        type: 'bridge',
        bridge: dirs.network.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: dirs.network.subnet }]],
          dataDir: dirs.network.ipamDir,
        },
      },
      ...extraPlugins,
    ],
  });
}

/** Writes the test daemon's config file and, unless told not to, its pod network. */
export async function writeTestConfig(dirs: TestDirs, opts: TestConfigOptions = {}): Promise<void> {
  if (opts.network !== false) {
    await mkdir(dirs.cniConfDir, { recursive: true });
    await writeFile(join(dirs.cniConfDir, '10-crisp-e2e.conflist'), testConflist(dirs));
  }
  const toml = [
    `listen = ${JSON.stringify(dirs.socket)}`,
    `root_dir = ${JSON.stringify(dirs.root)}`,
    `run_dir = ${JSON.stringify(dirs.run)}`,
    `log_level = ${JSON.stringify(opts.logLevel ?? 'debug')}`,
    'log_format = "json"',
    `metrics_address = ${JSON.stringify(opts.metricsAddress ?? '127.0.0.1:0')}`,
    opts.extraToml ?? '',
    '[network]',
    `cni_conf_dir = ${JSON.stringify(dirs.cniConfDir)}`,
    opts.networkToml ?? '',
    '',
  ].join('\n');
  await writeFile(dirs.configFile, toml);
}

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs bin/crisp with `args` to completion (for CLI tests). */
export function runCrisp(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<ExitResult & { stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(crispBin, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export class RunningCrisp {
  readonly logs: LogLine[] = [];
  readonly stderrText: string[] = [];
  metricsAddress = '';
  private readonly exited: Promise<ExitResult>;

  constructor(
    readonly dirs: TestDirs,
    readonly child: ChildProcess,
  ) {
    const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      this.stderrText.push(line);
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        // not JSON: a startup failure message; kept in stderrText
      }
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        resolve({ code, signal, stderr: this.stderrText.join('\n') });
      });
      // A binary that cannot be spawned at all is reported like an exit, not as a crash.
      child.once('error', (err) => {
        this.stderrText.push(`could not start ${crispBin}: ${err.message}`);
        resolve({ code: null, signal: null, stderr: this.stderrText.join('\n') });
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('crisp has no pid');
    return this.child.pid;
  }

  get metricsUrl(): string {
    return `http://${this.metricsAddress}`;
  }

  /** Resolves when the daemon logs that it is ready; rejects if it exits first or takes too long. */
  async ready(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited: ExitResult | undefined;
    void this.exited.then((r) => (exited = r));
    for (;;) {
      const line = this.logs.find((l) => l.msg === 'crisp is ready');
      if (line) {
        this.metricsAddress = typeof line.metricsAddress === 'string' ? line.metricsAddress : '';
        return;
      }
      if (exited)
        throw new Error(`crisp exited (code ${exited.code}) before it was ready:\n${exited.stderr}`);
      if (Date.now() > deadline)
        throw new Error(`crisp not ready after ${timeoutMs} ms:\n${this.stderrText.join('\n')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  waitExit(timeoutMs = 20_000): Promise<ExitResult> {
    return Promise.race([
      this.exited,
      new Promise<ExitResult>((_, reject) =>
        setTimeout(() => {
          reject(new Error(`crisp (pid ${String(this.child.pid)}) did not exit in ${timeoutMs} ms`));
        }, timeoutMs).unref(),
      ),
    ]);
  }

  /** SIGTERM and wait; SIGKILL if it does not go. */
  async stop(): Promise<ExitResult> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill('SIGTERM');
    try {
      return await this.waitExit(15_000);
    } catch {
      this.child.kill('SIGKILL');
      return this.exited;
    }
  }

  /** Resolves when the start-up recovery has checked every container and pod; rejects on timeout. */
  async recovered(timeoutMs = 60_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.logs.find((l) => l.msg === 'recovery finished');
      if (line) return line;
      if (Date.now() > deadline) throw new Error(`crisp did not finish recovery in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async kill(): Promise<ExitResult> {
    this.child.kill('SIGKILL');
    return this.exited;
  }
}

export function spawnCrisp(
  dirs: TestDirs,
  args: string[] = ['--config', dirs.configFile],
  env: NodeJS.ProcessEnv = {},
): RunningCrisp {
  const child = spawn(crispBin, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  return new RunningCrisp(dirs, child);
}

/** Writes a config, starts crisp and waits until it serves. */
export async function startCrisp(dirs?: TestDirs, opts: TestConfigOptions = {}): Promise<RunningCrisp> {
  const d = dirs ?? (await makeTestDirs());
  await writeTestConfig(d, opts);
  const crisp = spawnCrisp(d);
  await crisp.ready();
  return crisp;
}

/**
 * Removes a test's dirs. The daemon leaves one mount by design (its netns directory is a
 * private bind mount of itself, as /run/netns is for `ip netns`); anything still mounted below
 * the base is lazily unmounted first, deepest first, so rm never crosses into a mount.
 */
export async function removeTestDirs(dirs: TestDirs): Promise<void> {
  // Containers outlive crisp by design; a test that failed half-way may have left some.
  const runcRoot = join(dirs.run, 'runc');
  const leftover = await readdir(runcRoot).catch(() => [] as string[]);
  for (const id of leftover) {
    await runCommand('runc', ['--root', runcRoot, 'delete', '--force', id]).catch(() => undefined);
  }
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const mounts = info
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dirs.base || m.startsWith(`${dirs.base}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await runCommand('umount', ['-l', m]).catch(() => undefined);
  // The bridge is the test's own; CNI DEL leaves it (as for any bridge network).
  await runCommand('ip', ['link', 'del', dirs.network.bridge]).catch(() => undefined);
  await rm(dirs.base, { recursive: true, force: true });
}
