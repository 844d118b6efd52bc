/**
 * Orphan collection (docs/gc.md) against the real daemon: with crisp stopped, the test plants in
 * the daemon's own directories what a crash could leave — a container run by its own conmon that
 * the store does not know, mounts, bundle/container/exec/pod directories, an exit file, a pinned
 * netns, a host-local IPAM allocation, a stray blob and temp files — restarts crisp, and checks
 * that each is gone, logged and counted in crisp_orphans_cleaned_total{kind}, while a live pod
 * and its container are untouched.
 */
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { access, copyFile, mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { conmonCreateArgs } from '../../src/oci/conmon.js';
import { runCommand } from '../../src/util/command.js';
import { processAlive } from '../../src/util/proc.js';
import { connectCri, containerPid, createAndStart } from './harness/cri-client.js';
import { spawnCrisp } from './harness/daemon.js';
import { mountsUnder, until } from './harness/host.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

const newId = (): string => randomBytes(32).toString('hex');

/** The value of crisp_orphans_cleaned_total{kind} in a /metrics text (0 when absent). */
function cleaned(metrics: string, kind: string): number {
  const m = new RegExp(`^crisp_orphans_cleaned_total\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(metrics);
  return m?.[1] === undefined ? 0 : Number(m[1]);
}

describe('orphan collection', () => {
  let setup: BusyboxSetup;

  before(async () => {
    setup = await startWithBusybox();
  });
  after(async () => {
    await setup.teardown();
  });

  it('removes, logs and counts every kind of leftover at start, and leaves a live pod alone', async () => {
    const { dirs } = setup;
    const runcRoot = join(dirs.run, 'runc');
    const bundles = join(dirs.run, 'bundles');
    const containers = join(dirs.root, 'containers');

    // A live pod with a running container: nothing of it may be touched.
    const podConfig = {
      metadata: { name: 'live', namespace: 'e2e-gc', uid: 'uid-live', attempt: 0 },
      hostname: 'live',
      log_directory: join(dirs.base, 'logs', 'live'),
    };
    const { pod_sandbox_id: livePod } = await setup.cri.runtime.RunPodSandbox({ config: podConfig }, 60_000);
    const live = await createAndStart(
      setup.cri,
      { id: livePod, config: podConfig },
      { metadata: { name: 'c', attempt: 0 }, image: { image: setup.image }, command: ['sleep', '3600'] },
    );
    const livePid = await containerPid(setup.cri, live);
    setup.cri.close();
    const stopped = await setup.crisp.stop();
    assert.equal(stopped.code, 0, stopped.stderr);

    // 1. A container the store does not know, under its own conmon, with a tmpfs rootfs.
    const x = newId();
    const bundle = join(bundles, x);
    const rootfs = join(bundle, 'rootfs');
    await mkdir(join(rootfs), { recursive: true });
    await runCommand('mount', ['-t', 'tmpfs', 'tmpfs', rootfs]);
    await mkdir(join(rootfs, 'bin'));
    await copyFile('/usr/bin/busybox', join(rootfs, 'bin', 'busybox'));
    await runCommand('runc', ['spec', '--bundle', bundle]);
    const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as {
      process: { terminal: boolean; args: string[] };
    };
    spec.process.terminal = false;
    spec.process.args = ['/bin/busybox', 'sleep', '3600'];
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
    const persist = join(containers, x, 'userdata');
    await mkdir(persist, { recursive: true });
    await runCommand(
      'conmon',
      conmonCreateArgs({
        runtimePath: '/usr/sbin/runc',
        runtimeRoot: runcRoot,
        id: x,
        name: 'orphan',
        bundle,
        logPath: join(bundle, 'ctr.log'),
        exitDir: join(dirs.run, 'exits'),
        persistDir: persist,
        socketDir: join(dirs.run, 'attach'),
        terminal: false,
        stdin: false,
        stdinOnce: false,
        systemdCgroup: false,
      }),
      { timeoutMs: 30_000 },
    );
    const runcState = async (): Promise<{ status: string; pid: number } | undefined> => {
      const res = await runCommand('runc', ['--root', runcRoot, 'state', x]).catch(() => undefined);
      return res === undefined ? undefined : (JSON.parse(res.stdout) as { status: string; pid: number });
    };
    await until('the orphan container to be created', async () =>
      (await runcState())?.status === 'created' ? true : undefined,
    );
    await runCommand('runc', ['--root', runcRoot, 'start', x]);
    const orphanInit = (await runcState())?.pid ?? 0;
    const conmonPid = Number((await readFile(join(bundle, 'conmon-pidfile'), 'utf8')).trim());
    assert.ok(
      (await processAlive(conmonPid)) && (await processAlive(orphanInit)),
      'the planted container runs',
    );
    assert.ok(await exists(join(dirs.run, 'attach', x)), 'conmon made its attach entry');

    // 2. An image volume left mounted under another unknown container's directory.
    const y = newId();
    const volume = join(containers, y, 'image-volumes', '0');
    await mkdir(volume, { recursive: true });
    await runCommand('mount', ['-t', 'tmpfs', 'tmpfs', volume]);

    // 3. An exec session directory, an exit file, a pod directory with its shm mounted.
    const execDir = join(dirs.run, 'exec', 'exec-stale');
    await mkdir(execDir, { recursive: true });
    await writeFile(join(execDir, 'process.json'), '{}');
    const exitFile = join(dirs.run, 'exits', newId());
    await writeFile(exitFile, '0');
    const pod = newId();
    const shm = join(dirs.run, 'pods', pod, 'shm');
    await mkdir(shm, { recursive: true });
    await writeFile(join(dirs.run, 'pods', pod, 'hostname'), 'gone\n');
    await runCommand('mount', ['-t', 'tmpfs', 'tmpfs', shm]);

    // 4. Pod networking: a pinned netns and a host-local allocation with no cache entry.
    const netnsId = newId();
    const netnsPath = join(dirs.run, 'netns', netnsId);
    await writeFile(netnsPath, '');
    await runCommand('unshare', [`--net=${netnsPath}`, 'true']);
    const leaseId = newId();
    const leaseDir = join(dirs.network.ipamDir, 'crisp-e2e');
    await mkdir(leaseDir, { recursive: true });
    const lease = join(leaseDir, dirs.network.subnet.replace(/0\/24$/, '250'));
    await writeFile(lease, `${leaseId}\r\neth0`);

    // 5. Images: a blob no image refers to, a half download, a half unpack and a leftover in tmp.
    const blobBytes = Buffer.from('a blob nobody refers to\n');
    const blob = join(dirs.root, 'blobs', 'sha256', createHash('sha256').update(blobBytes).digest('hex'));
    await writeFile(blob, blobBytes);
    const ingest = join(dirs.root, 'blobs', 'sha256', '.ingest-0000-stale');
    await writeFile(ingest, 'half');
    const unpack = join(dirs.root, 'layers', `.tmp-${'ab'.repeat(32)}-stale`);
    await mkdir(join(unpack, 'diff'), { recursive: true });
    const scratch = join(dirs.root, 'tmp', 'import-stale');
    await mkdir(scratch, { recursive: true });
    await symlink('/etc', join(scratch, 'not-followed'));
    const old = new Date(Date.now() - 3_600_000);
    await utimes(ingest, old, old);

    // Restart: the start-up pass runs before the CRI socket opens.
    setup.crisp = spawnCrisp(dirs);
    await setup.crisp.ready();
    setup.cri = await connectCri(dirs.socket);

    const orphanLogs = (): string =>
      setup.crisp.logs
        .filter((l) => l.component === 'orphans' || l.component === 'network-reconciler')
        .map((l) => JSON.stringify(l))
        .join('\n');
    await until('the orphan conmon to be gone', async () =>
      (await processAlive(conmonPid)) ? undefined : true,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${orphanLogs()}`);
    });
    await until('the orphan container process to be gone', async () =>
      (await processAlive(orphanInit)) ? undefined : true,
    );
    assert.equal(await runcState(), undefined, 'runc no longer knows the orphan container');
    for (const gone of [
      bundle,
      join(containers, x),
      join(containers, y),
      join(dirs.run, 'attach', x),
      execDir,
      exitFile,
      join(dirs.run, 'pods', pod),
      netnsPath,
      lease,
      blob,
      ingest,
      unpack,
      scratch,
    ]) {
      assert.equal(await exists(gone), false, `${gone} was removed`);
    }
    for (const dir of [bundle, join(containers, y), join(dirs.run, 'pods', pod)]) {
      assert.deepEqual(await mountsUnder(dir), [], `nothing mounted under ${dir}`);
    }
    assert.ok(await exists('/etc/passwd'), 'a symlink in a removed directory was not followed');

    const metrics = await (await fetch(`${setup.crisp.metricsUrl}/metrics`)).text();
    const expected: Record<string, number> = {
      conmon: 1,
      runc: 1,
      mount: 3,
      bundle: 1,
      container_dir: 2,
      exec_dir: 1,
      exit_file: 1,
      attach: 1,
      pod_dir: 1,
      netns: 1,
      ipam: 1,
      blob: 1,
      tmp: 3,
    };
    const counted = Object.fromEntries(Object.keys(expected).map((k) => [k, cleaned(metrics, k)]));
    assert.deepEqual(counted, expected);
    const logged = new Set(setup.crisp.logs.filter((l) => l.msg === 'removed an orphan').map((l) => l.kind));
    assert.deepEqual([...logged].sort(), Object.keys(expected).sort(), 'each kind was logged');

    // The live pod is as it was.
    const status = await setup.cri.runtime.ContainerStatus({ container_id: live });
    assert.equal(status.status?.state, 'CONTAINER_RUNNING');
    assert.ok(await processAlive(livePid), "the live container's process runs");
    assert.deepEqual(await mountsUnder(join(bundles, live, 'rootfs')), [join(bundles, live, 'rootfs')]);
    const pods = await setup.cri.runtime.ListPodSandbox({});
    assert.deepEqual(
      pods.items.map((p) => [p.id, p.state]),
      [[livePod, 'SANDBOX_READY']],
    );
  });
});
