/**
 * Runs the real conmon (2.1.6) and runc (1.1.5) against a busybox bundle. Needs root. Each test
 * removes its container in `finally`; `after` checks that no process, mount or cgroup of this run
 * is left.
 */
import assert from 'node:assert/strict';
import {
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { CommandError, UnavailableError } from '../errors.js';
import {
  createContainer,
  execSync,
  hasOomFile,
  readExitFile,
  reopenLog,
  resizeTerminal,
  type ConmonCreateResult,
} from './conmon.js';
import { Runc } from './runc.js';

const CONMON = '/usr/bin/conmon';
const RUNC = '/usr/sbin/runc';
const BUSYBOX = '/bin/busybox';
const log = pino({ level: 'silent' });

/** Unique per run: container ids (and so their cgroups) start with it. */
const PREFIX = `crisp-oci-${process.pid}-${Date.now().toString(36)}`;
let tmp = '';
let runcRoot = '';
let exitDir = '';
let socketDir = '';
let runc: Runc;
let seq = 0;

interface TestContainer {
  id: string;
  bundle: string;
  persistDir: string;
  logPath: string;
}

async function makeBundle(args: string[]): Promise<TestContainer> {
  const id = `${PREFIX}-${++seq}`;
  const dir = join(tmp, String(seq));
  const bundle = join(dir, 'bundle');
  const rootfs = join(bundle, 'rootfs');
  const persistDir = join(dir, 'persist');
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await mkdir(persistDir);
  await copyFile(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  for (const name of ['sh', 'echo', 'sleep', 'cat', 'true', 'false']) {
    await symlink('busybox', join(rootfs, 'bin', name));
  }
  const caps = ['CAP_KILL', 'CAP_CHOWN', 'CAP_SETUID', 'CAP_SETGID'];
  const spec = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: ['PATH=/bin'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: true,
    },
    root: { path: 'rootfs' },
    hostname: 'crisp-test',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
      },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }],
    },
  };
  await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
  return { id, bundle, persistDir, logPath: join(dir, 'ctr.log') };
}

function create(c: TestContainer, timeoutMs?: number): Promise<ConmonCreateResult> {
  return createContainer({
    conmonPath: CONMON,
    runtimePath: RUNC,
    runtimeRoot: runcRoot,
    id: c.id,
    name: `name-${c.id}`,
    bundle: c.bundle,
    logPath: c.logPath,
    exitDir,
    persistDir: c.persistDir,
    socketDir,
    terminal: false,
    stdin: false,
    stdinOnce: false,
    systemdCgroup: false,
    timeoutMs,
    log,
  });
}

function exec(
  c: TestContainer,
  args: string[],
  timeoutSec: number,
  workDir: string,
  maxOutputBytes = 1 << 20,
  signal?: AbortSignal,
) {
  return execSync({
    ...(signal ? { signal } : {}),
    conmonPath: CONMON,
    runtimePath: RUNC,
    runtimeRoot: runcRoot,
    id: c.id,
    name: `name-${c.id}`,
    processSpec: { terminal: false, user: { uid: 0, gid: 0 }, args, env: ['PATH=/bin'], cwd: '/' },
    timeoutSec,
    workDir,
    systemdCgroup: false,
    maxOutputBytes,
    log,
  });
}

/** Still in /proc: alive, or a zombie nobody reaped. */
async function pidExists(pid: number): Promise<boolean> {
  try {
    await readFile(`/proc/${pid}/stat`, 'utf8');
    return true;
  } catch {
    return false;
  }
}

/** Live processes with an argument matching `re` (sleeps with numbers unique to one test). */
async function pidsWithArg(re: RegExp): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv[0] === 'sleep' && argv.slice(1).some((a) => re.test(a))) out.push(Number(name));
  }
  return out;
}

/** Alive and not a zombie. */
async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(25);
  }
}

async function readPidFile(path: string): Promise<number | undefined> {
  try {
    return Number.parseInt(await readFile(path, 'utf8'), 10);
  } catch {
    return undefined;
  }
}

/** Removes the container and its conmon, whatever state the test left them in. */
async function destroy(c: TestContainer): Promise<void> {
  await runc.delete(c.id, true).catch(() => undefined);
  const conmonPid = await readPidFile(join(c.bundle, 'conmon-pidfile'));
  if (conmonPid !== undefined && (await alive(conmonPid))) {
    try {
      process.kill(conmonPid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  if (conmonPid !== undefined) await waitFor('conmon to exit', async () => !(await alive(conmonPid)));
}

/** Live processes of this run: in one of its cgroups, or with the temp dir on their command line. */
async function leftovers(): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const [cmdline, cgroup] = await Promise.all([
        readFile(`/proc/${entry}/cmdline`, 'utf8'),
        readFile(`/proc/${entry}/cgroup`, 'utf8'),
      ]);
      if ((cmdline.includes(tmp) || cgroup.includes(PREFIX)) && (await alive(Number(entry)))) {
        found.push(`${entry}: ${cmdline.replaceAll('\0', ' ')}`);
      }
    } catch {
      // exited while we looked
    }
  }
  return found;
}

describe('conmon + runc (real binaries)', { concurrency: false }, () => {
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'crisp-oci-'));
    runcRoot = join(tmp, 'runc');
    exitDir = join(tmp, 'exits');
    socketDir = join(tmp, 'sock');
    await Promise.all([mkdir(runcRoot), mkdir(exitDir), mkdir(socketDir)]);
    runc = new Runc({ path: RUNC, root: runcRoot, systemdCgroup: false, log });
  });

  after(async () => {
    const left = await waitFor('leftover processes to go', async () => {
      const l = await leftovers();
      return l.length === 0 ? [] : false;
    }).catch(() => leftovers());
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    await rm(tmp, { recursive: true, force: true });
    assert.deepEqual(left, [], 'processes left behind');
    assert.ok(!mounts.includes(tmp), 'mounts left behind');
  });

  it('creates, starts, logs, kills and deletes a container', { timeout: 60_000 }, async () => {
    const c = await makeBundle(['sh', '-c', 'echo hello; exec sleep 100']);
    try {
      const { pid, conmonPid } = await create(c);
      assert.ok(pid > 0);
      assert.ok(await alive(conmonPid), 'conmon monitor runs');
      let state = await runc.state(c.id);
      assert.equal(state?.status, 'created');
      assert.equal(state.pid, pid);
      assert.equal(state.bundle, c.bundle);

      await runc.start(c.id);
      state = await runc.state(c.id);
      assert.equal(state?.status, 'running');
      const logged = await waitFor('the log line', async () => {
        const text = await readFile(c.logPath, 'utf8').catch(() => '');
        return /^\S+ stdout F hello$/m.test(text) ? text : undefined;
      });
      assert.match(logged, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d stdout F hello\n/);

      await runc.pause(c.id);
      assert.equal((await runc.state(c.id))?.status, 'paused');
      await runc.resume(c.id);
      assert.equal((await runc.state(c.id))?.status, 'running');
      assert.deepEqual(await runc.ps(c.id), [pid]);

      await runc.kill(c.id, 'SIGKILL');
      const exit = await waitFor('the exit file', () => readExitFile(exitDir, c.id));
      assert.equal(exit.exitCode, 137);
      assert.ok(Math.abs(exit.finishedAt.getTime() - Date.now()) < 30_000);
      assert.equal(await hasOomFile(c.persistDir), false);
      assert.equal((await runc.state(c.id))?.status, 'stopped');
      await waitFor('conmon to exit', async () => !(await alive(conmonPid)));
      await assert.rejects(reopenLog(c.bundle), UnavailableError);

      await runc.delete(c.id);
      assert.equal(await runc.state(c.id), undefined);
      await runc.delete(c.id); // already gone: fine
    } finally {
      await destroy(c);
    }
  });

  it('records the exit code of a command that exits by itself', { timeout: 60_000 }, async () => {
    const c = await makeBundle(['sh', '-c', 'exit 3']);
    try {
      await create(c);
      await runc.start(c.id);
      const exit = await waitFor('the exit file', () => readExitFile(exitDir, c.id));
      assert.equal(exit.exitCode, 3);
    } finally {
      await destroy(c);
    }
  });

  it('fails create with runc’s message when the command does not exist', { timeout: 60_000 }, async () => {
    // runc 1.1.5 checks the executable in `runc init` before it reports the container created, so
    // the failure surfaces from create (not as an exit code after start).
    const c = await makeBundle(['/bin/nope']);
    try {
      await assert.rejects(create(c), (err) => {
        assert.ok(err instanceof CommandError, String(err));
        assert.equal(err.command, `runc create ${c.id}`);
        assert.match(err.stderrTail, /exec: "\/bin\/nope": stat \/bin\/nope: no such file or directory/);
        return true;
      });
      assert.equal(await runc.state(c.id), undefined);
      assert.equal(await readExitFile(exitDir, c.id), undefined);
    } finally {
      await destroy(c);
    }
  });

  describe('with a running container', { concurrency: false }, () => {
    let c: TestContainer;
    let initPid = 0;
    before(async () => {
      c = await makeBundle(['sh', '-c', 'while true; do echo tick; sleep 0.1; done']);
      initPid = (await create(c)).pid;
      await runc.start(c.id);
    });
    after(async () => {
      await destroy(c);
    });

    const withWorkDir = async (fn: (dir: string) => Promise<void>): Promise<void> => {
      const dir = await mkdtemp(join(tmp, 'exec-'));
      try {
        await fn(dir);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    };

    it('execSync returns stdout, stderr and the exit code', { timeout: 60_000 }, () =>
      withWorkDir(async (dir) => {
        const r = await exec(c, ['sh', '-c', 'echo out; echo err >&2; printf partial; exit 5'], 10, dir);
        assert.equal(r.stdout.toString(), 'out\npartial');
        assert.equal(r.stderr.toString(), 'err\n');
        assert.equal(r.exitCode, 5);
        assert.equal(r.timedOut, false);
        assert.equal(r.truncated, false);
      }),
    );

    it('execSync caps the output', { timeout: 60_000 }, () =>
      withWorkDir(async (dir) => {
        const r = await exec(c, ['sh', '-c', 'echo 0123456789abcdef; echo e >&2'], 10, dir, 8);
        assert.equal(r.stdout.toString(), '01234567');
        assert.equal(r.stderr.toString(), 'e\n');
        assert.equal(r.exitCode, 0);
        assert.equal(r.truncated, true);
      }),
    );

    it('execSync of a missing binary is a CommandError with runc’s message', { timeout: 60_000 }, () =>
      withWorkDir(async (dir) => {
        await assert.rejects(exec(c, ['/bin/nope'], 10, dir), (err) => {
          assert.ok(err instanceof CommandError, String(err));
          assert.equal(err.command, `runc exec ${c.id}`);
          assert.match(err.stderrTail, /\/bin\/nope/);
          return true;
        });
      }),
    );

    it(
      'execSync on timeout kills and reaps the whole tree, also children that left the group',
      { timeout: 60_000 },
      () =>
        withWorkDir(async (dir) => {
          const script = 'sleep 1001 & setsid sleep 1002 & sh -c "sleep 1003; :" & exec sleep 1004';
          const pending = exec(c, ['sh', '-c', script], 2, dir);
          const pids = await waitFor('the four sleeps', async () => {
            const found = await pidsWithArg(/^100[1-4]$/);
            return found.length === 4 ? found : undefined;
          });
          const r = await pending;
          assert.equal(r.timedOut, true);
          const left = (await Promise.all(pids.map(async (p) => ((await pidExists(p)) ? [p] : [])))).flat();
          assert.deepEqual(left, [], 'each process of the exec is gone from /proc (killed and reaped)');
        }),
    );

    it('execSync cancelled by its caller kills and reaps the whole tree', { timeout: 60_000 }, () =>
      withWorkDir(async (dir) => {
        const ac = new AbortController();
        const pending = exec(
          c,
          ['sh', '-c', 'setsid sleep 1011 & exec sleep 1012'],
          0,
          dir,
          1 << 20,
          ac.signal,
        );
        const pids = await waitFor('the two sleeps', async () => {
          const found = await pidsWithArg(/^101[12]$/);
          return found.length === 2 ? found : undefined;
        });
        ac.abort();
        await assert.rejects(pending, { name: 'CanceledError' });
        const left = (await Promise.all(pids.map(async (p) => ((await pidExists(p)) ? [p] : [])))).flat();
        assert.deepEqual(left, [], 'each process of the exec is gone from /proc (killed and reaped)');
      }),
    );

    it('execSync times out, reports -1 and leaves no process', { timeout: 60_000 }, () =>
      withWorkDir(async (dir) => {
        const started = Date.now();
        const r = await exec(c, ['sh', '-c', 'echo before; exec sleep 100'], 1, dir);
        assert.ok(Date.now() - started < 10_000);
        assert.equal(r.timedOut, true);
        assert.equal(r.exitCode, -1);
        assert.equal(r.stdout.toString(), 'before\n');
        const execPid = await readPidFile(join(dir, 'pidfile'));
        assert.ok(execPid !== undefined && execPid > 0);
        // Gone by the time execSync answers, reaped too (not a zombie of the node's init).
        assert.equal(await pidExists(execPid), false, `exec process ${execPid} is still in /proc`);
        const pids = await runc.ps(c.id);
        assert.ok(pids.includes(initPid));
        const cmdlines = await Promise.all(
          pids.map((p) => readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '')),
        );
        assert.ok(!cmdlines.includes('sleep\x00100\x00'), `sleep 100 still runs: ${cmdlines.join(', ')}`);
      }),
    );

    it('reopenLog re-creates a renamed log; ctl messages are not merged', { timeout: 60_000 }, async () => {
      await waitFor('a tick', async () =>
        (await readFile(c.logPath, 'utf8').catch(() => '')).includes('tick'),
      );
      await rename(c.logPath, `${c.logPath}.1`);
      // Sent together: conmon 2.1.6 would run the first one twice if both arrived in one read,
      // and the log would never be reopened.
      await Promise.all([resizeTerminal(c.bundle, 10, 20), reopenLog(c.bundle, { logPath: c.logPath })]);
      const text = await waitFor('new lines in the new log', async () => {
        const t = await readFile(c.logPath, 'utf8');
        return /stdout F tick\n/.test(t) ? t : undefined;
      });
      assert.match(text, /^\S+ stdout F tick$/m);
    });
  });
});

/** Shell scripts standing in for conmon, to reach the failure paths real conmon rarely takes. */
describe('conmon pipe handling (fake conmon)', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crisp-fake-conmon-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fake = async (name: string, body: string): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return path;
  };
  const fakeCreate = async (conmonPath: string, extra: { timeoutMs?: number; signal?: AbortSignal } = {}) => {
    const bundle = await mkdtemp(join(dir, 'bundle-'));
    return createContainer({
      conmonPath,
      runtimePath: RUNC,
      runtimeRoot: join(dir, 'runc'),
      id: 'fake',
      name: 'fake',
      bundle,
      logPath: join(bundle, 'log'),
      exitDir: dir,
      persistDir: bundle,
      socketDir: dir,
      terminal: false,
      stdin: false,
      stdinOnce: false,
      systemdCgroup: false,
      log,
      ...extra,
    });
  };
  /** The fake writes its own pid as the monitor's, like conmon's first process does. */
  const writesPid = 'printf %s $$ > conmon-pidfile';

  it('reads the pid and the -P file', async () => {
    const path = await fake('ok', `${writesPid}\nprintf '{"pid": 4242}\\n' >&3\nexit 0`);
    const r = await fakeCreate(path);
    assert.equal(r.pid, 4242);
    assert.ok(r.conmonPid > 0);
  });

  it('turns pid -1 into a CommandError with runc’s message', async () => {
    const path = await fake(
      'fail',
      `${writesPid}\nprintf '{"pid": -1, "message": "time=\\\\"x\\\\" level=error msg=\\\\"boom\\\\"\\\\n"}\\n' >&3\nexit 0`,
    );
    await assert.rejects(fakeCreate(path), /^CommandError: runc create fake exited with code 1: boom$/);
  });

  it('treats EOF without a line as a failure', async () => {
    const path = await fake('eof', `${writesPid}\nexit 0`);
    await assert.rejects(fakeCreate(path), /runc create failed without a message/);
  });

  it('reports a first process that exits non-zero with its stderr', async () => {
    const path = await fake('bad', 'echo "[conmon:e]: bad flag" >&2\nexit 1');
    await assert.rejects(
      fakeCreate(path),
      /^CommandError: conmon \(runc create fake\) exited with code 1: \[conmon:e\]: bad flag$/,
    );
  });

  it('reports a conmon that cannot be started', async () => {
    await assert.rejects(fakeCreate(join(dir, 'missing')), /cannot start .*ENOENT/);
  });

  it('kills a hung conmon on timeout and on abort', async () => {
    const path = await fake('hang', `printf %s $$ > ${join(dir, 'hang.pid')}\nexec sleep 30`);
    await assert.rejects(fakeCreate(path, { timeoutMs: 300 }), /timed out after 300 ms/);
    const pid = await readPidFile(join(dir, 'hang.pid'));
    assert.ok(pid !== undefined);
    assert.equal(await alive(pid), false);
    const ac = new AbortController();
    setTimeout(() => {
      ac.abort();
    }, 200);
    await assert.rejects(fakeCreate(path, { signal: ac.signal }), { name: 'CanceledError' });
    const pid2 = await readPidFile(join(dir, 'hang.pid'));
    assert.ok(pid2 !== undefined && pid2 !== pid);
    assert.equal(await alive(pid2), false);
  });

  it('execSync bounds a conmon that overruns its -T', async () => {
    const path = await fake('exec-hang', `printf %s $$ > ${join(dir, 'exec-hang.pid')}\nexec sleep 30`);
    const workDir = await mkdtemp(join(dir, 'exec-'));
    const started = Date.now();
    const r = await execSync({
      conmonPath: path,
      runtimePath: RUNC,
      runtimeRoot: join(dir, 'runc'),
      id: 'fake',
      name: 'fake',
      processSpec: { args: ['true'] },
      timeoutSec: 1,
      overrunMs: 200,
      workDir,
      systemdCgroup: false,
      maxOutputBytes: 1024,
      log,
    });
    assert.ok(Date.now() - started < 5_000);
    assert.deepEqual(
      { exitCode: r.exitCode, timedOut: r.timedOut, stdout: r.stdout.length },
      { exitCode: -1, timedOut: true, stdout: 0 },
    );
    const pid = await readPidFile(join(dir, 'exec-hang.pid'));
    assert.ok(pid !== undefined);
    assert.equal(await alive(pid), false);
  });
});
