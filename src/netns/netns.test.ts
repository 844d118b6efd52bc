// Real namespaces: needs root, util-linux (unshare, nsenter, mount, umount) and iproute2.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AlreadyExistsError, CommandError, InvalidArgumentError } from '../errors.js';
import { createLogger } from '../log/logger.js';
import { runCommand } from '../util/command.js';
import { NetnsManager, parseMountInfo, readMountInfo, topMountAt } from './netns.js';

const log = createLogger({ level: 'silent', format: 'json' });
const roots: string[] = [];

const id = (): string => randomBytes(32).toString('hex');

async function mountsUnder(root: string): Promise<string[]> {
  return (await readMountInfo())
    .map((m) => m.mountPoint)
    .filter((p) => p === root || p.startsWith(`${root}/`));
}

/** A temp root with a manager on <root>/netns; cleans every mount under the root afterwards. */
async function withManager(
  fn: (mgr: NetnsManager, root: string) => Promise<void>,
  tools?: ConstructorParameters<typeof NetnsManager>[1]['tools'],
): Promise<void> {
  const root = await realpath(await mkdtemp(join(tmpdir(), 'crisp-netns-')));
  roots.push(root);
  const mgr = new NetnsManager(join(root, 'netns'), { log, timeoutMs: 10_000, tools });
  try {
    await fn(mgr, root);
  } finally {
    for (const p of await mgr.list()) await mgr.remove(p);
    // Deepest first, each until gone.
    for (let m = await mountsUnder(root); m.length > 0; m = await mountsUnder(root)) {
      const deepest = m.sort((a, b) => b.length - a.length)[0] ?? root;
      await runCommand('umount', ['-l', deepest]);
    }
    await rm(root, { recursive: true, force: true });
  }
}

async function netnsInode(path: string): Promise<string> {
  return (await runCommand('nsenter', [`--net=${path}`, 'readlink', '/proc/self/ns/net'])).stdout.trim();
}

after(async () => {
  for (const root of roots) assert.deepEqual(await mountsUnder(root), [], `mounts left under ${root}`);
});

describe('NetnsManager', () => {
  it('makes the directory a private self bind mount, once', async () => {
    await withManager(async (mgr) => {
      await mgr.init();
      await mgr.init();
      const again = new NetnsManager(mgr.dir, { log });
      await again.init();
      const here = (await readMountInfo()).filter((m) => m.mountPoint === mgr.dir);
      assert.equal(here.length, 1);
      assert.deepEqual(here[0]?.optional, []);
    });
  });

  it('creates pinned namespaces with lo up, each a different namespace', async () => {
    await withManager(async (mgr) => {
      const a = await mgr.create(id());
      const b = await mgr.create(id());
      assert.equal(a.startsWith(`${mgr.dir}/`), true);
      assert.equal(mgr.pathFor(basename(a)), a);
      assert.equal(await mgr.exists(a), true);
      const links = (await runCommand('nsenter', [`--net=${a}`, 'ip', '-o', 'link', 'show'])).stdout;
      assert.match(links, /^1: lo: <[^>]*\bUP\b[^>]*>/);
      assert.equal(links.trim().split('\n').length, 1, 'only lo in a new namespace');
      const [na, nb, host] = [await netnsInode(a), await netnsInode(b), await readlinkSelf()];
      assert.match(na, /^net:\[\d+\]$/);
      assert.notEqual(na, nb);
      assert.notEqual(na, host);
      assert.deepEqual(await mgr.list(), [a, b].sort());
      const entry = topMountAt(await readMountInfo(), a);
      assert.equal(entry?.fsType, 'nsfs');
    });
  });

  it('survives a new manager (restart) and removes idempotently', async () => {
    await withManager(async (mgr) => {
      const a = await mgr.create(id());
      const before = await netnsInode(a);
      const restarted = new NetnsManager(mgr.dir, { log });
      await restarted.init();
      assert.equal(await restarted.exists(a), true);
      assert.equal(await netnsInode(a), before);
      await restarted.remove(a);
      assert.equal(await restarted.exists(a), false);
      await assert.rejects(access(a), { code: 'ENOENT' });
      assert.equal(topMountAt(await readMountInfo(), a), undefined);
      await restarted.remove(a);
      assert.deepEqual(await restarted.list(), []);
    });
  });

  it('removes a file whose namespace was already unmounted', async () => {
    await withManager(async (mgr) => {
      const a = await mgr.create(id());
      await runCommand('umount', [a]);
      assert.equal(await mgr.exists(a), false);
      await mgr.remove(a);
      await assert.rejects(access(a), { code: 'ENOENT' });
    });
  });

  it('refuses bad names and paths outside its directory', async () => {
    await withManager(async (mgr, root) => {
      for (const bad of ['', '../x', 'ABC', 'a/b', 'g1', '.', `${id()}0`]) {
        await assert.rejects(mgr.create(bad), InvalidArgumentError, bad);
      }
      const outside = join(root, 'victim');
      await writeFile(outside, 'x');
      await assert.rejects(mgr.remove(outside), InvalidArgumentError);
      await assert.rejects(mgr.remove(`${mgr.dir}/../victim`), InvalidArgumentError);
      await assert.rejects(mgr.exists('/etc/passwd'), InvalidArgumentError);
      assert.equal(await readFile(outside, 'utf8'), 'x');
    });
  });

  it('refuses a name that exists', async () => {
    await withManager(async (mgr) => {
      const name = id();
      await mgr.create(name);
      await assert.rejects(mgr.create(name), AlreadyExistsError);
    });
  });

  it('unwinds a failed creation and names the step', async () => {
    await withManager(
      async (mgr) => {
        const name = id();
        await assert.rejects(mgr.create(name), (err) => {
          assert.ok(err instanceof CommandError);
          assert.equal(err.command, 'false');
          assert.equal(err.exitCode, 1);
          assert.match(err.message, /bring up lo in network namespace/);
          return true;
        });
        const path = join(mgr.dir, name);
        assert.equal(topMountAt(await readMountInfo(), path), undefined);
        await assert.rejects(access(path), { code: 'ENOENT' });
      },
      { nsenter: 'false' },
    );
  });

  it('bounds each command by a timeout', async () => {
    const root = await realpath(await mkdtemp(join(tmpdir(), 'crisp-netns-')));
    roots.push(root);
    const stub = join(root, 'slow-unshare');
    await writeFile(stub, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
    const mgr = new NetnsManager(join(root, 'netns'), { log, timeoutMs: 300, tools: { unshare: stub } });
    try {
      await assert.rejects(mgr.create(id()), (err) => {
        assert.ok(err instanceof CommandError);
        assert.equal(err.exitCode, undefined);
        assert.match(err.message, /pin network namespace .*timeout/);
        return true;
      });
      assert.deepEqual(await mgr.list(), []);
    } finally {
      await runCommand('umount', ['-l', mgr.dir]);
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('parseMountInfo', () => {
  it('reads optional fields and decodes escapes', () => {
    const [e] = parseMountInfo(
      '42 27 254:0 /a\\040b /mnt/a\\040b rw,relatime shared:1 master:2 - ext4 /dev/vda rw,discard\n',
    );
    assert.deepEqual(e, {
      mountId: 42,
      parentId: 27,
      root: '/a b',
      mountPoint: '/mnt/a b',
      options: 'rw,relatime',
      optional: ['shared:1', 'master:2'],
      fsType: 'ext4',
      source: '/dev/vda',
      superOptions: 'rw,discard',
    });
  });

  it('finds the top of stacked mounts', () => {
    const entries = parseMountInfo(
      [
        '50 27 0:1 / /x rw - tmpfs a rw',
        '51 50 0:2 / /x rw - tmpfs b rw',
        '52 27 0:3 / /y rw - tmpfs c rw',
      ].join('\n'),
    );
    assert.equal(topMountAt(entries, '/x')?.source, 'b');
    assert.equal(topMountAt(entries, '/z'), undefined);
  });
});

async function readlinkSelf(): Promise<string> {
  return (await runCommand('readlink', ['/proc/self/ns/net'])).stdout.trim();
}
