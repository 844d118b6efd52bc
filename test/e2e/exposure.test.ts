/**
 * What crisp exposes on the node (docs/security.md, "What crisp exposes, and what was checked"):
 * the CRI socket's owner, group and mode, the permissions of its state directories, the admin
 * socket, the metrics endpoint's address, and a container log path that a symlink in the pod's
 * log directory would lead out of it.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { parseGroupFile } from '../../src/util/group.js';
import { rejection, type CriClients } from './harness/cri-client.js';
import { makeTestDirs, removeTestDirs, spawnCrisp, startCrisp, writeTestConfig } from './harness/daemon.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o7777;

/** A group of this node other than root's, by name and gid (from /etc/group). */
async function someGroup(): Promise<{ name: string; gid: number }> {
  for (const [name, gid] of parseGroupFile(await readFile('/etc/group', 'utf8'))) {
    if (gid !== 0) return { name, gid };
  }
  throw new Error('/etc/group has no group but root');
}

describe('what crisp exposes', () => {
  it('the CRI socket is root-owned, mode 0660, in root group by default; state dirs are private', async () => {
    const crisp = await startCrisp(undefined, { network: false });
    try {
      const { dirs } = crisp;
      const sock = await stat(dirs.socket);
      assert.ok(sock.isSocket());
      assert.equal(sock.mode & 0o7777, 0o660);
      assert.equal(sock.uid, 0);
      assert.equal(sock.gid, 0);
      assert.equal(await mode(join(dirs.run, 'admin.sock')), 0o600, 'admin socket: root only');
      assert.equal(await mode(dirs.root), 0o711, 'root_dir: searchable, not listable');
      for (const sub of ['state', 'containers', 'blobs', 'layers']) {
        assert.equal(await mode(join(dirs.root, sub)), 0o700, `root_dir/${sub}`);
      }
      for (const sub of ['exits', 'attach', 'exec', 'runc']) {
        assert.equal(await mode(join(dirs.run, sub)), 0o700, `run_dir/${sub}`);
      }
      assert.equal(await mode(join(dirs.run, 'bundles')), 0o711, 'bundles: searchable, not listable');
      // The state database holds every pod's and container's CRI config (env values included);
      // LevelDB writes its files 0644, so the 0700 directory above is what keeps them private.
      assert.match(crisp.metricsAddress, /^127\.0\.0\.1:\d+$/, 'the test config keeps metrics on loopback');
    } finally {
      await crisp.stop();
      await removeTestDirs(crisp.dirs);
    }
  });

  it('socket_group gives the socket that group (by name)', async () => {
    const group = await someGroup();
    const crisp = await startCrisp(undefined, {
      network: false,
      extraToml: `socket_group = ${JSON.stringify(group.name)}`,
    });
    try {
      const sock = await stat(crisp.dirs.socket);
      assert.equal(sock.gid, group.gid);
      assert.equal(sock.uid, 0);
      assert.equal(sock.mode & 0o7777, 0o660);
    } finally {
      await crisp.stop();
      await removeTestDirs(crisp.dirs);
    }
  });

  it('an unknown socket_group stops crisp with a config error naming the key, before it listens', async () => {
    const dirs = await makeTestDirs();
    try {
      await writeTestConfig(dirs, { network: false, extraToml: 'socket_group = "no-such-group-crisp"' });
      const exit = await spawnCrisp(dirs).waitExit();
      assert.equal(exit.code, 2, exit.stderr);
      assert.match(exit.stderr, /socket_group.*no-such-group-crisp/);
      await assert.rejects(stat(dirs.socket), /ENOENT/);
    } finally {
      await removeTestDirs(dirs);
    }
  });
});

describe('container log paths stay in the pod log directory', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;

  before(async () => {
    setup = await startWithBusybox();
    cri = setup.cri;
  });
  after(async () => {
    await setup.teardown();
  });

  it('a symlink in the pod log directory leading out is INVALID_ARGUMENT; nothing is made outside', async () => {
    const logDir = join(setup.dirs.base, 'logs', 'pod');
    const outside = join(setup.dirs.base, 'outside');
    await mkdir(logDir, { recursive: true });
    await mkdir(outside);
    await symlink(outside, join(logDir, 'c'));
    const config = {
      metadata: { name: 'logs', namespace: 'e2e-exposure', uid: 'uid-logs', attempt: 0 },
      hostname: 'logs',
      log_directory: logDir,
    };
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    const container = (logPath: string) => ({
      pod_sandbox_id,
      sandbox_config: config,
      config: {
        metadata: { name: 'c', attempt: 0 },
        image: { image: setup.image },
        command: ['sh', '-c', 'echo hello; sleep 30'],
        log_path: logPath,
      },
    });
    const err = await rejection(cri.runtime.CreateContainer(container('c/0.log'), 60_000));
    assert.equal(err.code, GrpcCode.INVALID_ARGUMENT, err.details);
    assert.match(err.details, /config\.log_path.*symlink to .*outside/);
    assert.deepEqual(await readdir(outside), [], 'nothing was created outside the log directory');
    const left = await cri.runtime.ListContainers({ filter: { pod_sandbox_id } });
    assert.deepEqual(left.containers, [], 'no container was left behind');
    // The same container with a plain path is fine.
    const { container_id } = await cri.runtime.CreateContainer(container('d/0.log'), 60_000);
    assert.match(container_id, /^[0-9a-f]{64}$/);
    assert.ok((await stat(join(logDir, 'd'))).isDirectory());
  });
});
