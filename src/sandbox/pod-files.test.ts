// Real tmpfs mounts: needs root and util-linux mount/umount.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  access,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  realpath,
  rm,
  stat,
  statfs,
  writeFile,
} from 'node:fs/promises';
import { hostname as osHostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { readMountInfo, topMountAt } from '../netns/netns.js';
import { runCommand } from '../util/command.js';
import {
  DEFAULT_SHM_SIZE_BYTES,
  PodFiles,
  podHostname,
  renderHosts,
  renderResolvConf,
  type PodFilesOptions,
} from './pod-files.js';

const TMPFS_MAGIC = 0x01021994;
const roots: string[] = [];
const id = (): string => randomBytes(32).toString('hex');

async function mountsUnder(root: string): Promise<string[]> {
  return (await readMountInfo())
    .map((m) => m.mountPoint)
    .filter((p) => p === root || p.startsWith(`${root}/`));
}

interface Env {
  files: PodFiles;
  root: string;
  hostHosts: string;
  hostResolv: string;
  hostShm: string;
}

/** A temp root with fake host files; unmounts everything under it afterwards. */
async function withPodFiles(fn: (env: Env) => Promise<void>, opts: PodFilesOptions = {}): Promise<void> {
  const root = await realpath(await mkdtemp(join(tmpdir(), 'crisp-podfiles-')));
  roots.push(root);
  const hostHosts = join(root, 'host-hosts');
  const hostResolv = join(root, 'host-resolv.conf');
  const hostShm = join(root, 'host-shm');
  await writeFile(hostHosts, '127.0.0.1 localhost\n10.0.0.5 node-1 # the node\n');
  await writeFile(hostResolv, '# host\nnameserver 10.0.0.2\nsearch example.com\n');
  await mkdir(hostShm);
  const files = new PodFiles(join(root, 'pods'), {
    hostHostsFile: hostHosts,
    hostResolvConf: hostResolv,
    hostShmDir: hostShm,
    ...opts,
  });
  try {
    await fn({ files, root, hostHosts, hostResolv, hostShm });
  } finally {
    for (let m = await mountsUnder(root); m.length > 0; m = await mountsUnder(root)) {
      const deepest = m.sort((a, b) => b.length - a.length)[0] ?? root;
      await runCommand('umount', ['-l', deepest]);
    }
    await rm(root, { recursive: true, force: true });
  }
}

after(async () => {
  for (const root of roots) assert.deepEqual(await mountsUnder(root), [], `mounts left under ${root}`);
});

describe('PodFiles', () => {
  it('writes the files from the DNS config and mounts a 64 MiB shm tmpfs', async () => {
    await withPodFiles(async ({ files }) => {
      const podId = id();
      const p = await files.create(podId, {
        hostname: 'web-0',
        dns: {
          servers: ['10.96.0.10', 'fd00::10'],
          searches: ['ns.svc.cluster.local', 'cluster.local'],
          options: ['ndots:5'],
        },
        hostNetwork: false,
        hostIpc: false,
      });
      assert.deepEqual(p, files.paths(podId));
      assert.equal(await readFile(p.hostname, 'utf8'), 'web-0\n');
      assert.equal(
        await readFile(p.resolvConf, 'utf8'),
        'search ns.svc.cluster.local cluster.local\nnameserver 10.96.0.10\nnameserver fd00::10\noptions ndots:5\n',
      );
      const hosts = await readFile(p.hosts, 'utf8');
      assert.match(hosts, /^127\.0\.0\.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n/);
      assert.match(hosts, /\n127\.0\.1\.1\tweb-0\n$/);
      for (const f of [p.hostname, p.hosts, p.resolvConf]) assert.equal((await stat(f)).mode & 0o777, 0o644);
      assert.deepEqual((await readdir(p.dir)).sort(), ['hostname', 'hosts', 'resolv.conf', 'shm']);

      const shm = topMountAt(await readMountInfo(), p.shm);
      assert.equal(shm?.fsType, 'tmpfs');
      assert.match(shm.options, /\bnosuid\b/);
      assert.match(shm.options, /\bnodev\b/);
      assert.match(shm.options, /\bnoexec\b/);
      assert.match(shm.superOptions, /\bsize=65536k\b/);
      const fsInfo = await statfs(p.shm);
      assert.equal(fsInfo.type, TMPFS_MAGIC);
      assert.equal(fsInfo.blocks * fsInfo.bsize, DEFAULT_SHM_SIZE_BYTES);
      assert.equal((await stat(p.shm)).mode & 0o7777, 0o1777);

      // Repeatable: files rewritten, shm not stacked.
      await files.create(podId, { hostname: 'web-1', hostNetwork: false, hostIpc: false });
      assert.equal(await readFile(p.hostname, 'utf8'), 'web-1\n');
      assert.equal((await readMountInfo()).filter((m) => m.mountPoint === p.shm).length, 1);

      await files.remove(podId);
      assert.equal(topMountAt(await readMountInfo(), p.shm), undefined);
      await assert.rejects(access(p.dir), { code: 'ENOENT' });
      await files.remove(podId);
    });
  });

  it('copies the host resolv.conf without DNS config, and hosts for host-network pods', async () => {
    await withPodFiles(async ({ files, hostHosts, hostResolv }) => {
      const podId = id();
      const p = await files.create(podId, {
        hostname: 'node-1',
        hostNetwork: true,
        hostIpc: false,
        shmSizeBytes: 8 * 1024 * 1024,
      });
      assert.equal(await readFile(p.resolvConf, 'utf8'), await readFile(hostResolv, 'utf8'));
      assert.equal(await readFile(p.hosts, 'utf8'), await readFile(hostHosts, 'utf8'));
      assert.match(topMountAt(await readMountInfo(), p.shm)?.superOptions ?? '', /\bsize=8192k\b/);

      // An empty DNS config counts as none.
      const qId = id();
      const q = await files.create(qId, {
        hostname: 'a',
        dns: { servers: [], searches: [], options: [] },
        hostNetwork: false,
        hostIpc: false,
        podIps: ['10.1.0.7', 'fd00::7'],
      });
      assert.equal(await readFile(q.resolvConf, 'utf8'), await readFile(hostResolv, 'utf8'));
      assert.match(await readFile(q.hosts, 'utf8'), /\n10\.1\.0\.7\ta\nfd00::7\ta\n$/);
      await files.remove(podId);
      await files.remove(qId);
    });
  });

  it('defaults to the real host files', async () => {
    await withPodFiles(
      async ({ files }) => {
        const podId = id();
        const p = await files.create(podId, { hostname: 'x', hostNetwork: false, hostIpc: true });
        assert.equal(
          await readFile(p.resolvConf, 'utf8'),
          await readFile('/etc/resolv.conf', 'utf8').catch(() => ''),
        );
        assert.equal(p.shm, '/dev/shm');
        await files.remove(podId);
      },
      { hostResolvConf: '/etc/resolv.conf', hostShmDir: '/dev/shm' },
    );
  });

  it('uses the host shm for hostIpc and mounts nothing', async () => {
    await withPodFiles(async ({ files, root, hostShm }) => {
      const podId = id();
      const p = await files.create(podId, { hostname: '', hostNetwork: true, hostIpc: true });
      assert.equal(p.shm, hostShm);
      assert.deepEqual(files.paths(podId, { hostIpc: true }), p);
      assert.equal(await readFile(p.hostname, 'utf8'), `${osHostname()}\n`);
      assert.deepEqual(await mountsUnder(root), []);
      assert.deepEqual((await readdir(p.dir)).sort(), ['hostname', 'hosts', 'resolv.conf']);
      await files.remove(podId);
      await access(hostShm);
    });
  });

  it('refuses what the kernel cannot take, and bad ids, before writing anything', async () => {
    await withPodFiles(async ({ files, root }) => {
      const podId = id();
      const base = { hostname: 'ok', hostNetwork: false, hostIpc: false };
      const cases: [Parameters<PodFiles['create']>[1], string][] = [
        // '' is resolved by the sandbox engine (podHostname) before pod files are made.
        [{ ...base, hostname: '' }, 'config.hostname'],
        // sethostname(2) takes at most 64 bytes.
        [{ ...base, hostname: 'a'.repeat(65) }, 'config.hostname'],
        [{ ...base, hostname: 'é'.repeat(33) }, 'config.hostname'],
        [{ ...base, shmSizeBytes: 0 }, 'shmSizeBytes'],
        [{ ...base, shmSizeBytes: 1.5 }, 'shmSizeBytes'],
        [{ ...base, podIps: ['10.0.0.300'] }, 'podIps[0]'],
      ];
      for (const [opts, field] of cases) {
        await assert.rejects(files.create(podId, opts), (err) => {
          assert.ok(err instanceof InvalidArgumentError, String(err));
          assert.equal(err.field, field);
          return true;
        });
      }
      for (const bad of ['', '../etc', 'ABC', 'a/b', `${id()}0`]) {
        assert.throws(() => files.paths(bad), InvalidArgumentError);
        await assert.rejects(files.create(bad, base), InvalidArgumentError);
        await assert.rejects(files.remove(bad), InvalidArgumentError);
      }
      await assert.rejects(access(join(root, 'pods')), { code: 'ENOENT' });
    });
  });

  it('writes host names and DNS entries as given, as containerd and CRI-O do', async () => {
    await withPodFiles(async ({ files }) => {
      const podId = id();
      const paths = await files.create(podId, {
        hostname: 'My_Host',
        hostNetwork: false,
        hostIpc: false,
        dns: { servers: ['dns.local'], searches: ['a', 'b c'], options: ['ndots:5'] },
      });
      assert.equal(await readFile(paths.hostname, 'utf8'), 'My_Host\n');
      assert.equal(
        await readFile(paths.resolvConf, 'utf8'),
        'search a b c\nnameserver dns.local\noptions ndots:5\n',
      );
      await files.remove(podId);
    });
  });

  it('refuses to delete through a foreign mount', async () => {
    await withPodFiles(async ({ files }) => {
      const podId = id();
      const p = await files.create(podId, { hostname: 'x', hostNetwork: false, hostIpc: false });
      const other = join(p.dir, 'other');
      await mkdir(other);
      await runCommand('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'foreign', other]);
      await writeFile(join(other, 'keep'), 'data');
      await assert.rejects(files.remove(podId), FailedPreconditionError);
      assert.equal(await readFile(join(other, 'keep'), 'utf8'), 'data');
      await runCommand('umount', [other]);
      await files.remove(podId);
      await assert.rejects(access(p.dir), { code: 'ENOENT' });
    });
  });

  it('unwinds a failed shm mount', async () => {
    await withPodFiles(
      async ({ files, root }) => {
        const podId = id();
        await assert.rejects(
          files.create(podId, { hostname: 'x', hostNetwork: false, hostIpc: false }),
          /mount the shm/,
        );
        await assert.rejects(access(files.paths(podId).dir), { code: 'ENOENT' });
        assert.deepEqual(await mountsUnder(root), []);
      },
      { tools: { mount: 'false' } },
    );
  });
});

describe('podHostname', () => {
  it("takes the request's name, else CRI-O's: the node's on the host network, the id's first 12 digits otherwise", () => {
    const podId = 'a1b2c3d4e5f6'.padEnd(64, '0');
    assert.equal(podHostname('web-0', false, podId), 'web-0');
    assert.equal(podHostname('web-0', true, podId), 'web-0');
    assert.equal(podHostname('', false, podId), 'a1b2c3d4e5f6');
    assert.equal(podHostname('', true, podId), osHostname());
  });
});

describe('renderers', () => {
  it('renders resolv.conf lines only for non-empty lists', () => {
    assert.equal(
      renderResolvConf({ servers: ['1.1.1.1'], searches: [], options: [] }),
      'nameserver 1.1.1.1\n',
    );
    assert.equal(
      renderResolvConf({ servers: [], searches: ['a'], options: ['rotate'] }),
      'search a\noptions rotate\n',
    );
    assert.equal(renderResolvConf({ servers: [], searches: [], options: [] }), undefined);
  });

  it('renders hosts with the standard lines', () => {
    assert.equal(
      renderHosts('h', []),
      '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n' +
        'fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n127.0.1.1\th\n',
    );
  });
});
