/**
 * The daemon as a process: clean shutdown on SIGTERM, restart after SIGKILL, refusing a second
 * instance, bad config, and the CLI's own commands.
 */
import assert from 'node:assert/strict';
import { access, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { connectCri } from './harness/cri-client.js';
import {
  makeTestDirs,
  removeTestDirs,
  runCrisp,
  spawnCrisp,
  startCrisp,
  writeTestConfig,
} from './harness/daemon.js';

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

describe('daemon lifecycle', () => {
  it('stops cleanly on SIGTERM: exit 0, socket and pid file removed', async () => {
    const crisp = await startCrisp();
    try {
      assert.equal((await readFile(`${crisp.dirs.run}/crisp.pid`, 'utf8')).trim(), String(crisp.pid));
      const exit = await crisp.stop();
      assert.equal(exit.code, 0, exit.stderr);
      assert.equal(await exists(crisp.dirs.socket), false, 'socket removed');
      assert.equal(await exists(`${crisp.dirs.run}/crisp.pid`), false, 'pid file removed');
      assert.ok(crisp.logs.some((l) => l.msg === 'crisp stopped'));
    } finally {
      await removeTestDirs(crisp.dirs);
    }
  });

  it('starts again after SIGKILL: the stale socket is replaced and no lock is left', async () => {
    const first = await startCrisp();
    try {
      await first.kill();
      assert.equal(await exists(first.dirs.socket), true, 'SIGKILL leaves the socket file');
      const second = spawnCrisp(first.dirs);
      await second.ready();
      const cri = await connectCri(first.dirs.socket);
      const res = await cri.runtime.Version({});
      assert.equal(res.runtime_name, 'crisp');
      cri.close();
      assert.equal((await second.stop()).code, 0);
    } finally {
      await removeTestDirs(first.dirs);
    }
  });

  it('refuses a second daemon on the same root dir', async () => {
    const first = await startCrisp();
    const dirs2 = await makeTestDirs();
    try {
      // Same root, different socket.
      await writeTestConfig({ ...dirs2, root: first.dirs.root });
      const second = spawnCrisp(dirs2);
      const exit = await second.waitExit();
      assert.equal(exit.code, 1);
      assert.match(
        exit.stderr,
        /root_dir .* is locked by another running process: is crisp already running\?/,
      );
      // The first one is unharmed.
      const cri = await connectCri(first.dirs.socket);
      assert.equal((await cri.runtime.Version({})).runtime_name, 'crisp');
      cri.close();
    } finally {
      await first.stop();
      await removeTestDirs(first.dirs);
      await removeTestDirs(dirs2);
    }
  });

  it('refuses a second daemon on the same socket', async () => {
    const first = await startCrisp();
    const dirs2 = await makeTestDirs();
    try {
      await writeTestConfig({ ...dirs2, socket: first.dirs.socket });
      const exit = await spawnCrisp(dirs2).waitExit();
      assert.equal(exit.code, 1);
      assert.match(exit.stderr, /socket .* is locked by another running process/);
      assert.equal(await exists(first.dirs.socket), true, 'the first daemon keeps its socket');
    } finally {
      await first.stop();
      await removeTestDirs(first.dirs);
      await removeTestDirs(dirs2);
    }
  });

  it('refuses to replace a listen path that is not a socket', async () => {
    const dirs = await makeTestDirs();
    try {
      await writeTestConfig(dirs);
      await mkdir(dirs.run, { recursive: true });
      await writeFile(dirs.socket, 'precious');
      const exit = await spawnCrisp(dirs).waitExit();
      assert.equal(exit.code, 1);
      assert.match(exit.stderr, /exists and is not a socket/);
      assert.equal(await readFile(dirs.socket, 'utf8'), 'precious');
    } finally {
      await removeTestDirs(dirs);
    }
  });

  it('keeps its state database across restarts and refuses a corrupt one, leaving it in place', async () => {
    const first = await startCrisp();
    try {
      assert.equal((await first.stop()).code, 0);
      // A clean restart opens the same database.
      const second = spawnCrisp(first.dirs);
      await second.ready();
      assert.equal((await second.stop()).code, 0);

      const db = `${first.dirs.root}/state`;
      await rm(`${db}/CURRENT`);
      const third = spawnCrisp(first.dirs);
      const exit = await third.waitExit();
      assert.equal(exit.code, 1);
      assert.ok(exit.stderr.includes(`state database ${db} is corrupt`), exit.stderr);
      assert.ok(
        (await readdir(db)).some((f) => f.endsWith('.ldb') || f.startsWith('MANIFEST')),
        'old files kept',
      );
      assert.equal(await exists(`${db}/CURRENT`), false, 'not silently recreated');
    } finally {
      await removeTestDirs(first.dirs);
    }
  });

  it('reports the systemd cgroup driver, and serves no metrics when metrics_address is empty', async () => {
    const crisp = await startCrisp(undefined, { extraToml: 'cgroup_driver = "systemd"', metricsAddress: '' });
    try {
      const cri = await connectCri(crisp.dirs.socket);
      assert.equal((await cri.runtime.RuntimeConfig({})).linux?.cgroup_driver, 'SYSTEMD');
      cri.close();
      const ready = crisp.logs.find((l) => l.msg === 'crisp is ready');
      assert.equal(ready?.metricsAddress, null, 'no metrics endpoint');
    } finally {
      await crisp.stop();
      await removeTestDirs(crisp.dirs);
    }
  });

  it('exits 2 on an invalid config, naming the key and the file', async () => {
    const dirs = await makeTestDirs();
    try {
      await writeTestConfig(dirs, { extraToml: 'no_such_key = 1' });
      const unknown = await runCrisp(['--config', dirs.configFile]);
      assert.equal(unknown.code, 2);
      assert.ok(unknown.stderr.includes(dirs.configFile), unknown.stderr);
      assert.match(unknown.stderr, /no_such_key/);

      await writeTestConfig(dirs, { extraToml: 'conmon_path = 7' });
      const wrongType = await runCrisp(['--config', dirs.configFile]);
      assert.equal(wrongType.code, 2);
      assert.match(wrongType.stderr, /conmon_path/);
      assert.match(wrongType.stderr, /string/);

      await writeTestConfig(dirs);
      const badPath = await runCrisp(['--config', dirs.configFile, '--root', 'relative/dir']);
      assert.equal(badPath.code, 2);
      assert.match(badPath.stderr, /--root: must be an absolute path/);

      const badFlag = await runCrisp(['--config', dirs.configFile, '--nope']);
      assert.equal(badFlag.code, 2);

      const missing = await runCrisp(['--config', `${dirs.base}/missing.toml`]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /missing\.toml/);
      assert.equal(await exists(dirs.root), false, 'nothing was created');
    } finally {
      await removeTestDirs(dirs);
    }
  });

  it('prints the effective and default config as TOML, its version and help', async () => {
    const dirs = await makeTestDirs();
    try {
      await writeTestConfig(dirs);
      const effective = await runCrisp(['config', '--config', dirs.configFile, '--log-level', 'warn']);
      assert.equal(effective.code, 0, effective.stderr);
      assert.ok(effective.stdout.includes(`root_dir = "${dirs.root}"`), effective.stdout);
      assert.match(effective.stdout, /^log_level = "warn"$/m);

      const defaults = await runCrisp(['config', '--default']);
      assert.equal(defaults.code, 0);
      assert.match(defaults.stdout, /^listen = "\/run\/crisp\/crisp\.sock"$/m);
      assert.match(defaults.stdout, /^\[runtimes\.runc\]$/m);

      const version = await runCrisp(['--version']);
      assert.match(version.stdout, /^crisp \d+\.\d+\.\d+/);
      const help = await runCrisp(['--help']);
      assert.match(help.stdout, /--metrics-address/);
    } finally {
      await removeTestDirs(dirs);
    }
  });
});
