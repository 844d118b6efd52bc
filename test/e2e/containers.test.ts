/**
 * Containers on real runc and conmon, beyond the basic lifecycle of pods.test.ts: the CRI log
 * format (F/P lines, 8192-byte chunks, timestamps), log reopening after rotation, OOM kills,
 * ExecSync timeouts, output and errors, stop signals and timeouts, many pods at once, starting an
 * exited container again, and a command the image does not have. Every test makes its own pods
 * and removes them (also when it fails); checks go through the CRI and the real files, cgroups
 * and processes.
 */
import assert from 'node:assert/strict';
import { readFile, readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode, type ServiceError } from '@grpc/grpc-js';
import { containerPid as pidOf, rejection, type CriClients } from './harness/cri-client.js';
import type { RunningCrisp, TestDirs } from './harness/daemon.js';
import { mountsUnder, sleep, until } from './harness/host.js';
import type { TestRegistry } from './harness/registry.js';
import { busyboxImage } from './harness/test-images.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  cmd: string;
  cgroup: string;
}

async function procInfo(pid: number): Promise<ProcInfo | undefined> {
  try {
    const [cmdline, statText, cgroup] = await Promise.all([
      readFile(`/proc/${pid}/cmdline`, 'utf8'),
      readFile(`/proc/${pid}/stat`, 'utf8'),
      readFile(`/proc/${pid}/cgroup`, 'utf8'),
    ]);
    // pid (comm) state ppid ...: comm may hold spaces and parentheses; split after the last ')'.
    const rest = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
    return {
      pid,
      ppid: Number(rest[1]),
      state: rest[0] ?? '?',
      cmd: cmdline.replaceAll('\0', ' ').trim(),
      cgroup,
    };
  } catch {
    return undefined; // gone
  }
}

async function allProcesses(): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const p = await procInfo(Number(name));
    if (p) out.push(p);
  }
  return out;
}

const describeProc = (p: ProcInfo): string =>
  `pid ${p.pid} (ppid ${p.ppid}, state ${p.state}): ${JSON.stringify(p.cmd)}`;

/** The memory cgroup directory (cgroup v1) of a process. */
async function memoryCgroupOf(pid: number): Promise<string> {
  const text = await readFile(`/proc/${pid}/cgroup`, 'utf8');
  const line = text.split('\n').find((l) => l.split(':')[1]?.split(',').includes('memory'));
  const path = line?.split(':')[2];
  if (path === undefined) throw new Error(`no memory cgroup for pid ${pid}:\n${text}`);
  return join('/sys/fs/cgroup/memory', path);
}

/** The processes of a cgroup (v1 cgroup.procs). */
async function cgroupProcs(dir: string): Promise<ProcInfo[]> {
  const text = await readFile(join(dir, 'cgroup.procs'), 'utf8');
  const out: ProcInfo[] = [];
  for (const pid of text.split('\n').filter((l) => l !== '')) {
    const p = await procInfo(Number(pid));
    if (p) out.push(p);
  }
  return out;
}

// --- the CRI log format ----------------------------------------------------------------------

interface LogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  tag: 'P' | 'F';
  content: string;
}

/** RFC3339Nano with a numeric offset, as conmon writes it (local time, never `Z`). */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{1,9}[+-]\d{2}:\d{2}$/;

function parseCriLog(text: string): LogLine[] {
  assert.ok(text === '' || text.endsWith('\n'), 'the log ends with a newline');
  const lines = text.split('\n').slice(0, -1);
  return lines.map((line, i) => {
    const m = /^(\S+) (stdout|stderr) ([PF])(?: (.*))?$/s.exec(line);
    assert.ok(
      m,
      `log line ${i + 1} is "<time> <stream> <P|F> <content>": ${JSON.stringify(line.slice(0, 120))}`,
    );
    const [, time = '', stream, tag, content = ''] = m;
    assert.match(time, TIMESTAMP, `log line ${i + 1}: timestamp is RFC3339Nano with an offset`);
    return { time, stream: stream as LogLine['stream'], tag: tag as LogLine['tag'], content };
  });
}

/** Milliseconds since the epoch of a CRI log timestamp (JS dates take 3 fraction digits). */
function timestampMs(time: string): number {
  const m = /^(.*T\d{2}:\d{2}:\d{2})\.(\d{1,9})(.*)$/.exec(time);
  assert.ok(m, time);
  const [, head = '', frac = '', offset = ''] = m;
  return Date.parse(`${head}.${frac.padEnd(3, '0').slice(0, 3)}${offset}`);
}

/** One stream's lines joined as a CRI reader does: P lines continue until an F ends the message. */
function messagesOf(lines: LogLine[], stream: LogLine['stream']) {
  const complete: { text: string; parts: LogLine[] }[] = [];
  let parts: LogLine[] = [];
  for (const l of lines.filter((x) => x.stream === stream)) {
    parts.push(l);
    if (l.tag === 'F') {
      complete.push({ text: parts.map((p) => p.content).join(''), parts });
      parts = [];
    }
  }
  return { complete, partial: parts.length > 0 ? parts : undefined };
}

/** The numbers N of `lineN` messages in a log file. */
async function lineNumbers(path: string): Promise<number[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  // The writer may be mid-line: only whole lines count.
  const whole = text.slice(0, text.lastIndexOf('\n') + 1);
  return parseCriLog(whole)
    .filter((l) => l.stream === 'stdout' && l.tag === 'F' && /^line\d+$/.test(l.content))
    .map((l) => Number(l.content.slice(4)));
}

function assertConsecutive(nums: number[], what: string): void {
  for (let i = 1; i < nums.length; i++) {
    assert.equal(nums[i], (nums[i - 1] ?? 0) + 1, `${what}: consecutive lines, got ${nums.join(',')}`);
  }
}

describe('containers on runc and conmon: logs, exec, OOM, stop, concurrency, restart', () => {
  let setup: BusyboxSetup;
  let registry: TestRegistry;
  let crisp: RunningCrisp;
  let dirs: TestDirs;
  let cri: CriClients;
  let image: string;
  let logDir: string;
  let podCount = 0;

  const podConfig = (name = `pod${++podCount}`, labels: Record<string, string> = {}) => ({
    metadata: { name, namespace: 'e2e-containers', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: join(logDir, name),
    labels: { app: name, ...labels },
    annotations: { 'e2e/pod': name },
  });

  type Pod = { id: string; config: ReturnType<typeof podConfig> };

  const containerConfig = (name: string, command: string[], extra: Record<string, unknown> = {}) => ({
    metadata: { name, attempt: 0 },
    image: { image },
    command,
    log_path: `${name}.log`,
    labels: { ctr: name },
    ...extra,
  });

  async function runPod(name?: string, labels: Record<string, string> = {}): Promise<Pod> {
    const config = podConfig(name, labels);
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    return { id: pod_sandbox_id, config };
  }

  async function createContainer(
    pod: Pod,
    name: string,
    command: string[],
    extra: Record<string, unknown> = {},
  ) {
    const { container_id } = await cri.runtime.CreateContainer(
      { pod_sandbox_id: pod.id, config: containerConfig(name, command, extra), sandbox_config: pod.config },
      60_000,
    );
    return container_id;
  }

  async function runContainer(
    pod: Pod,
    name: string,
    command: string[],
    extra: Record<string, unknown> = {},
  ) {
    const id = await createContainer(pod, name, command, extra);
    await cri.runtime.StartContainer({ container_id: id }, 60_000);
    return id;
  }

  /** Runs `body` with a fresh pod, which is removed afterwards even when the body fails. */
  async function withPod(body: (pod: Pod) => Promise<void>, name?: string): Promise<void> {
    const pod = await runPod(name);
    try {
      await body(pod);
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
    } finally {
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000).catch(() => undefined);
    }
  }

  const logPathOf = (pod: Pod, name: string) => join(pod.config.log_directory, `${name}.log`);
  const status = async (id: string) => (await cri.runtime.ContainerStatus({ container_id: id })).status;
  const exited = (id: string, timeoutMs?: number) =>
    until(
      `container ${id} to exit`,
      async () => {
        const s = await status(id);
        return s?.state === 'CONTAINER_EXITED' ? s : undefined;
      },
      timeoutMs,
    );
  const containerPid = (id: string): Promise<number> => pidOf(cri, id);
  const waitForLog = (path: string, needle: string) =>
    until(`${JSON.stringify(needle)} in ${path}`, async () => {
      const text = await readFile(path, 'utf8').catch(() => '');
      return text.includes(needle) ? text : undefined;
    });

  before(async () => {
    setup = await startWithBusybox();
    ({ registry, crisp, dirs, cri, image } = setup);
    logDir = join(dirs.base, 'logs');
  });

  after(async () => {
    await setup.teardown();
  });

  it('writes the CRI log format: F lines per stream, a partial line as P, long lines in P chunks', async () => {
    await withPod(async (pod) => {
      const t0 = Date.now();
      // seq -s '' prints 1234567891011…5000 and one newline: an 18893-byte line in order.
      const script = "echo out1; echo err1 >&2; seq -s '' 1 5000; printf 'no newline'";
      const id = await runContainer(pod, 'logs', ['sh', '-c', script]);
      const done = await exited(id);
      assert.equal(done.exit_code, 0);
      const text = await waitForLog(logPathOf(pod, 'logs'), 'no newline');
      const lines = parseCriLog(text);
      for (const l of lines) {
        const ms = timestampMs(l.time);
        assert.ok(ms >= t0 - 5_000 && ms <= Date.now() + 5_000, `timestamp ${l.time} is about now`);
      }

      const err = messagesOf(lines, 'stderr');
      assert.deepEqual(
        err.complete.map((m) => m.text),
        ['err1'],
      );
      assert.equal(err.partial, undefined);
      assert.match(text, /^\S+ stderr F err1$/m);

      const out = messagesOf(lines, 'stdout');
      assert.match(text, /^\S+ stdout F out1$/m);
      assert.equal(out.complete[0]?.text, 'out1');
      const longLine = Array.from({ length: 5000 }, (_, i) => String(i + 1)).join('');
      const long = out.complete[1];
      assert.ok(long, 'the long line is in the log');
      assert.equal(long.text.length, longLine.length, 'the long line arrives whole');
      assert.equal(long.text, longLine, 'the long line arrives in order');
      const chunks = long.parts.slice(0, -1);
      assert.ok(chunks.length >= 2, `a ${longLine.length}-byte line takes at least 2 P chunks before its F`);
      for (const c of chunks) {
        assert.equal(c.tag, 'P');
        assert.ok(c.content.length <= 8192, `P chunk of ${c.content.length} bytes is at most 8192`);
      }
      assert.equal(long.parts.at(-1)?.tag, 'F');

      // 'no newline' is a P line, followed by nothing, or by an F with the rest (nothing).
      assert.match(text, /^\S+ stdout P no newline$/m);
      if (out.partial) {
        assert.equal(out.complete.length, 2);
        assert.deepEqual(
          out.partial.map((p) => p.content),
          ['no newline'],
        );
      } else {
        assert.equal(out.complete.length, 3);
        assert.deepEqual(
          out.complete[2]?.parts.map((p) => [p.tag, p.content]),
          [
            ['P', 'no newline'],
            ['F', ''],
          ],
        );
      }
    });
  });

  it('ReopenContainerLog: a renamed log keeps the old lines, the re-created path gets the new ones', async () => {
    await withPod(async (pod) => {
      const loop = 'i=0; while true; do i=$((i+1)); echo line$i; sleep 0.05; done';
      const id = await runContainer(pod, 'rotate', ['sh', '-c', loop]);
      const logPath = logPathOf(pod, 'rotate');
      const rotated = `${logPath}.20260101-000000`;
      await until('3 lines', async () => ((await lineNumbers(logPath)).length >= 3 ? true : undefined));
      await rename(logPath, rotated); // what kubelet's rotation does
      await cri.runtime.ReopenContainerLog({ container_id: id });
      assert.ok((await stat(logPath)).isFile(), 'the log path exists again when ReopenContainerLog answers');
      await until('3 lines in the re-created log', async () =>
        (await lineNumbers(logPath)).length >= 3 ? true : undefined,
      );
      await cri.runtime.StopContainer({ container_id: id, timeout: '0' }, 30_000);
      await exited(id);

      const old = await lineNumbers(rotated);
      const fresh = await lineNumbers(logPath);
      assert.equal(old[0], 1, 'the renamed file keeps the first lines');
      assertConsecutive(old, 'renamed file');
      assertConsecutive(fresh, 're-created file');
      assert.equal(fresh[0], (old.at(-1) ?? 0) + 1, 'the new file continues where the renamed one stops');

      const refused = await rejection(cri.runtime.ReopenContainerLog({ container_id: id }));
      assert.equal(refused.code, GrpcCode.FAILED_PRECONDITION, refused.details);
      assert.match(refused.details, /exited/);
    });
  });

  it('reports OOMKilled (exit code 137) for a container killed at its memory limit', async () => {
    await withPod(async (pod) => {
      // dd fills a 16 MiB buffer from /dev/zero: 16 MiB of anonymous memory against an 8 MiB limit.
      const id = await runContainer(pod, 'oom', ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=16M', 'count=1'], {
        linux: { resources: { memory_limit_in_bytes: String(8 * 1024 * 1024) } },
      });
      const s = await exited(id);
      const persistDir = join(dirs.root, 'containers', id, 'userdata');
      const oomFiles = {
        persist: await stat(join(persistDir, 'oom')).then(
          () => true,
          () => false,
        ),
      };
      const daemonLog = crisp.logs
        .filter((l) => l.containerId === id)
        .map((l) => JSON.stringify(l))
        .join('\n');
      assert.equal(
        s.exit_code,
        137,
        `killed by SIGKILL; status ${JSON.stringify(s)}; oom marker ${JSON.stringify(oomFiles)}`,
      );
      assert.equal(
        s.reason,
        'OOMKilled',
        `reason; oom marker in ${persistDir}: ${oomFiles.persist}; daemon log:\n${daemonLog}`,
      );
    });
  });

  it('ExecSync with a timeout returns -1 in time and kills the whole process tree', async () => {
    await withPod(async (pod) => {
      const id = await runContainer(pod, 'exec-timeout', ['sleep', '1000']);
      const cgroup = await memoryCgroupOf(await containerPid(id));
      const t0 = performance.now();
      const pending = cri.runtime.ExecSync(
        { container_id: id, cmd: ['sh', '-c', 'sleep 100 & sleep 100'], timeout: '1' },
        30_000,
      );
      // Both sleeps run in the container's cgroup while the exec waits (so the check below means something).
      const sleeps = async () => (await cgroupProcs(cgroup)).filter((p) => p.cmd === 'sleep 100');
      let seen = 0;
      while (seen < 2 && performance.now() - t0 < 3_000) {
        seen = (await sleeps()).length;
        if (seen < 2) await sleep(20);
      }
      const res = await pending;
      const elapsed = performance.now() - t0;
      assert.equal(seen, 2, 'both sleeps of the exec were seen running in the container');
      assert.equal(res.exit_code, -1, 'a timed-out ExecSync answers exit code -1');
      assert.match(res.stderr.toString(), /timed out/);
      assert.ok(elapsed >= 900, `ran until the timeout (${Math.round(elapsed)} ms)`);
      assert.ok(elapsed < 5_000, `answered within a few seconds of the timeout (${Math.round(elapsed)} ms)`);

      // Give SIGKILLs a moment to land, then nothing of the exec may be left in the container.
      const leftover = async () =>
        (await cgroupProcs(cgroup)).filter((p) => p.cmd !== 'sleep 1000' && p.state !== 'Z');
      let left = await leftover();
      const deadline = Date.now() + 2_000;
      while (left.length > 0 && Date.now() < deadline) {
        await sleep(100);
        left = await leftover();
      }
      assert.deepEqual(
        left.map(describeProc),
        [],
        `processes of the timed-out exec still in ${cgroup}: ${left.map(describeProc).join('; ')}`,
      );
      const monitors = (await allProcesses()).filter((p) => p.cmd.includes(join(dirs.run, 'exec')));
      assert.deepEqual(monitors.map(describeProc), [], 'no conmon of the exec is left');
      assert.equal((await status(id))?.state, 'CONTAINER_RUNNING', 'the container itself runs on');
    });
  });

  it('ExecSync returns more than 1 MiB of output whole, and a clear error for a missing binary', async () => {
    await withPod(async (pod) => {
      const id = await runContainer(pod, 'exec-output', ['sleep', '1000']);
      // 1,288,895 bytes of lines on stdout; one 1,100,000-byte line without a newline on stderr.
      const res = await cri.runtime.ExecSync(
        {
          container_id: id,
          cmd: ['sh', '-c', "seq 1 200000; head -c 1100000 /dev/zero | tr '\\0' x >&2"],
          timeout: '30',
        },
        60_000,
      );
      assert.equal(res.exit_code, 0, res.stderr.toString().slice(0, 200));
      const expected = Array.from({ length: 200_000 }, (_, i) => `${i + 1}\n`).join('');
      assert.ok(expected.length > 1024 * 1024);
      const stdout = res.stdout.toString();
      assert.equal(stdout.length, expected.length, 'stdout arrives whole');
      assert.ok(stdout === expected, 'stdout arrives in order and unchanged');
      const stderr = res.stderr.toString();
      assert.equal(stderr.length, 1_100_000, 'stderr arrives whole, without an added newline');
      assert.ok(/^x+$/.test(stderr), 'stderr is unchanged');

      const missing = await rejection(
        cri.runtime.ExecSync({ container_id: id, cmd: ['/no/such/binary', 'arg'], timeout: '10' }),
      );
      assert.equal(missing.code, GrpcCode.UNKNOWN, `a runtime failure is UNKNOWN: ${missing.details}`);
      assert.match(missing.details, /\/no\/such\/binary/, 'the message names the binary');
      assert.match(missing.details, /no such file or directory/i, 'the message says why');
      assert.equal((await status(id))?.state, 'CONTAINER_RUNNING', 'the container itself runs on');
    });
  });

  it('StopContainer: a SIGTERM handler exits 0 (Completed); the image stop signal; timeout 0 kills at once', async () => {
    await registry.push(
      'library/busybox-usr1',
      '1.0',
      await busyboxImage({ config: { stopSignal: 'SIGUSR1' } }),
    );
    const usr1Image = `${registry.host}/library/busybox-usr1:1.0`;
    await cri.image.PullImage({ image: { image: usr1Image } }, 60_000);

    await withPod(async (pod) => {
      const trapping = await runContainer(pod, 'trap-term', [
        'sh',
        '-c',
        'trap "exit 0" TERM; echo ready; while true; do sleep 0.1; done',
      ]);
      const usr1 = await runContainer(
        pod,
        'trap-usr1',
        ['sh', '-c', 'trap "exit 0" USR1; trap "exit 7" TERM; echo ready; while true; do sleep 0.1; done'],
        { image: { image: usr1Image } },
      );
      const stubborn = await runContainer(pod, 'stubborn', [
        'sh',
        '-c',
        'trap "" TERM; echo ready; while true; do sleep 0.1; done',
      ]);
      for (const name of ['trap-term', 'trap-usr1', 'stubborn'])
        await waitForLog(logPathOf(pod, name), 'ready');

      let t0 = performance.now();
      await cri.runtime.StopContainer({ container_id: trapping, timeout: '10' }, 30_000);
      let elapsed = performance.now() - t0;
      assert.ok(elapsed < 5_000, `stopped by its handler, not the timeout (${Math.round(elapsed)} ms)`);
      const term = await status(trapping);
      assert.equal(term?.state, 'CONTAINER_EXITED');
      assert.equal(term.exit_code, 0);
      assert.equal(term.reason, 'Completed');

      t0 = performance.now();
      await cri.runtime.StopContainer({ container_id: usr1, timeout: '10' }, 30_000);
      elapsed = performance.now() - t0;
      const u = await status(usr1);
      assert.equal(u?.state, 'CONTAINER_EXITED');
      assert.equal(u.exit_code, 0, `the image's StopSignal (SIGUSR1) was sent, not SIGTERM (exit 7)`);
      assert.equal(u.reason, 'Completed');
      assert.ok(elapsed < 5_000, `stopped by its handler (${Math.round(elapsed)} ms)`);

      t0 = performance.now();
      await cri.runtime.StopContainer({ container_id: stubborn, timeout: '0' }, 30_000);
      elapsed = performance.now() - t0;
      assert.ok(elapsed < 1_000, `timeout 0 kills at once (${Math.round(elapsed)} ms)`);
      const killed = await status(stubborn);
      assert.equal(killed?.state, 'CONTAINER_EXITED');
      assert.equal(killed.exit_code, 137);
      assert.equal(killed.reason, 'Error');
    });
  });

  it('runs 20 pods x 2 containers concurrently and removes them all, leaving nothing behind', async (t) => {
    const PODS = 20;
    const tPods = performance.now();
    const pods = await Promise.all(
      Array.from({ length: PODS }, (_, i) => runPod(`conc${i}`, { suite: 'conc' })),
    );
    const podsMs = performance.now() - tPods;
    try {
      const tCtrs = performance.now();
      const containerIds = (
        await Promise.all(
          pods.map((pod) =>
            Promise.all(
              ['a', 'b'].map((n) =>
                runContainer(pod, n, ['sleep', '1000'], { labels: { suite: 'conc', ctr: n } }),
              ),
            ),
          ),
        )
      ).flat();
      const ctrsMs = performance.now() - tCtrs;
      t.diagnostic(
        `${PODS} pods ready in ${Math.round(podsMs)} ms; ${containerIds.length} containers created and started in ${Math.round(ctrsMs)} ms`,
      );

      const running = await cri.runtime.ListContainers({
        filter: { label_selector: { suite: 'conc' }, state: { state: 'CONTAINER_RUNNING' } },
      });
      assert.equal(running.containers.length, 2 * PODS);
      assert.deepEqual(running.containers.map((c) => c.id).sort(), [...containerIds].sort());

      const infraIds: string[] = [];
      for (const pod of pods) {
        const res = await cri.runtime.PodSandboxStatus({ pod_sandbox_id: pod.id, verbose: true });
        const info = JSON.parse(res.info.info ?? '{}') as { infraContainer?: { id: string } | null };
        if (info.infraContainer) infraIds.push(info.infraContainer.id);
      }
      assert.equal(infraIds.length, PODS);

      const tRemove = performance.now();
      await Promise.all(pods.map((p) => cri.runtime.StopPodSandbox({ pod_sandbox_id: p.id }, 60_000)));
      const stopMs = performance.now() - tRemove;
      await Promise.all(pods.map((p) => cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000)));
      t.diagnostic(
        `stopped in ${Math.round(stopMs)} ms, stopped + removed in ${Math.round(performance.now() - tRemove)} ms`,
      );

      const ids = [...pods.map((p) => p.id), ...infraIds, ...containerIds];
      const listed = await cri.runtime.ListContainers({ filter: { label_selector: { suite: 'conc' } } });
      assert.deepEqual(listed.containers, [], 'no container listed');
      const podsLeft = await cri.runtime.ListPodSandbox({ filter: { label_selector: { suite: 'conc' } } });
      assert.deepEqual(podsLeft.items, [], 'no pod listed');

      const netnsDir = join(dirs.run, 'netns');
      const mounts = (await mountsUnder(dirs.base)).filter((m) => m !== netnsDir);
      assert.deepEqual(mounts, [], 'no mount under the test dirs but the netns dir itself');
      assert.deepEqual(await readdir(netnsDir), [], 'no netns file left');

      const procs = (await allProcesses()).filter(
        (p) =>
          p.pid !== crisp.pid &&
          (p.cmd.includes(dirs.base) || ids.some((id) => p.cmd.includes(id) || p.cgroup.includes(id))),
      );
      assert.deepEqual(procs.map(describeProc), [], 'no conmon, catatonit or container process left');

      const cgroupsLeft: string[] = [];
      for (const controller of await readdir('/sys/fs/cgroup')) {
        const dir = join('/sys/fs/cgroup', controller, 'crisp');
        const entries = await readdir(dir).catch(() => [] as string[]);
        for (const e of entries) if (ids.some((id) => e.includes(id))) cgroupsLeft.push(join(dir, e));
      }
      assert.deepEqual(cgroupsLeft, [], 'no cgroup left under /sys/fs/cgroup/*/crisp');
      assert.deepEqual(await readdir(join(dirs.run, 'runc')), [], 'no runc state left');
    } finally {
      await Promise.all(
        pods.map((p) =>
          cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000).catch(() => undefined),
        ),
      );
    }
  });

  it('StartContainer on an exited container runs it again (reinit, docs/state-machine.md)', async () => {
    await withPod(async (pod) => {
      const id = await runContainer(pod, 'again', ['sh', '-c', 'echo ran']);
      const first = await exited(id);
      assert.equal(first.reason, 'Completed');
      await waitForLog(logPathOf(pod, 'again'), 'ran');

      await cri.runtime.StartContainer({ container_id: id }, 60_000);
      const second = await until('the second run to exit', async () => {
        const s = await status(id);
        return s?.state === 'CONTAINER_EXITED' && BigInt(s.started_at) > BigInt(first.started_at)
          ? s
          : undefined;
      });
      assert.equal(second.exit_code, 0);
      assert.equal(second.reason, 'Completed');
      assert.ok(BigInt(second.finished_at) >= BigInt(second.started_at));
      const runs = await until('two runs in the log', async () => {
        const text = await readFile(logPathOf(pod, 'again'), 'utf8');
        const n = parseCriLog(text).filter((l) => l.content === 'ran').length;
        return n >= 2 ? n : undefined;
      });
      assert.equal(runs, 2);
      // EXITED covers 'stopped' (exit recorded) and 'exited' (cleaned up): wait for the cleanup.
      const rootfs = join(dirs.run, 'bundles', id, 'rootfs');
      await until(`${rootfs} to be unmounted after the second run`, async () =>
        (await mountsUnder(rootfs)).length === 0 ? true : undefined,
      );
    });
  });

  it('a command missing from the image: the container ends EXITED with a reason naming it, nothing half-made', async () => {
    await withPod(async (pod) => {
      const netnsDir = join(dirs.run, 'netns');
      const snapshot = async () => ({
        mounts: (await mountsUnder(dirs.base)).filter((m) => m !== netnsDir).sort(),
        runc: (await readdir(join(dirs.run, 'runc'))).sort(),
        monitors: (await allProcesses())
          .filter((p) => p.pid !== crisp.pid && p.cmd.includes(dirs.base))
          .map((p) => p.pid)
          .sort(),
        bundles: (await readdir(join(dirs.run, 'bundles'))).sort(),
        storage: (await readdir(join(dirs.root, 'containers'))).sort(),
      });
      const before = await snapshot();

      let id: string | undefined;
      let createError: ServiceError | undefined;
      let startError: ServiceError | undefined;
      try {
        id = await createContainer(pod, 'missing', ['/no/such/binary', 'arg']);
      } catch (err) {
        createError = err as ServiceError;
      }
      if (id !== undefined) {
        try {
          await cri.runtime.StartContainer({ container_id: id }, 60_000);
        } catch (err) {
          startError = err as ServiceError;
        }
      }

      // Nothing half-created, whatever the answers were.
      const listed = await cri.runtime.ListContainers({ filter: { pod_sandbox_id: pod.id } });
      assert.deepEqual(
        listed.containers.map((c) => c.id),
        id === undefined ? [] : [id],
        'only the container the client was told about exists',
      );
      if (id !== undefined) await exited(id).catch(() => undefined);
      const afterwards = await snapshot();
      if (id === undefined) {
        assert.deepEqual(
          afterwards,
          before,
          'a failed create leaves no mount, runc state, monitor, bundle or storage',
        );
      } else {
        const { bundles: _b, storage: _s, ...rest } = afterwards;
        const { bundles: _b0, storage: _s0, ...restBefore } = before;
        assert.deepEqual(rest, restBefore, 'the exited container leaves no mount, runc state or monitor');
      }

      const how = createError
        ? `CreateContainer failed: code ${createError.code} (${GrpcCode[createError.code]}): ${createError.details}`
        : startError
          ? `StartContainer failed: code ${startError.code} (${GrpcCode[startError.code]}): ${startError.details}`
          : 'create and start succeeded';
      assert.ok(id !== undefined, `CreateContainer must create the container; ${how}`);
      const s = await exited(id);
      assert.equal(s.state, 'CONTAINER_EXITED', how);
      assert.notEqual(s.reason, '', `a reason is given (${how})`);
      assert.match(s.message, /\/no\/such\/binary/, `the message names the binary (${how})`);
      assert.notEqual(s.exit_code, 0, 'a failed start is not a success');
    });
  });
});
