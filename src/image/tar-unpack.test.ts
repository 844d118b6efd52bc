import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { CrispError, FailedPreconditionError } from '../errors.js';
import { runCommand } from '../util/command.js';
import { paxEntry, rawTarBytes, tarBytes, withTempDir, type TarEntry } from './tar-fixtures.js';
import { unpackTar, type TarUnpackStats } from './tar-unpack.js';

const LABEL = 'layer sha256:0123';
const T1 = new Date('2021-03-04T05:06:07Z');
const T2 = new Date('2019-01-02T03:04:05Z');

async function unpackInto(root: string, tar: Buffer): Promise<TarUnpackStats> {
  await fs.mkdir(root, { recursive: true });
  return unpackTar(Readable.from([tar]), root, { label: LABEL });
}

async function getXattr(file: string, name: string): Promise<string | undefined> {
  try {
    const { stdout } = await runCommand('getfattr', ['-h', '-e', 'hex', '-n', name, '--', file]);
    const line = stdout.split('\n').find((l) => l.startsWith(`${name}=`));
    return line?.slice(name.length + 1);
  } catch {
    return undefined;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Unpacking must fail with FailedPrecondition naming `entry`, and write nothing outside `root`. */
async function assertRefused(entries: TarEntry[] | Buffer, entry: string, reason: RegExp): Promise<void> {
  await withTempDir(async (dir) => {
    const root = path.join(dir, 'root');
    const outside = path.join(dir, 'outside');
    await fs.mkdir(outside);
    await fs.writeFile(path.join(outside, 'passwd'), 'host\n');
    const tar = Buffer.isBuffer(entries) ? entries : await tarBytes(entries);
    await assert.rejects(unpackInto(root, tar), (err: unknown) => {
      assert.ok(
        err instanceof FailedPreconditionError,
        `expected FailedPreconditionError, got ${String(err)}`,
      );
      assert.ok(err.message.startsWith(`${LABEL} entry ${JSON.stringify(entry)}`), err.message);
      assert.match(err.message, reason);
      return true;
    });
    assert.deepEqual(await fs.readdir(outside), ['passwd']);
    assert.equal(await fs.readFile(path.join(outside, 'passwd'), 'utf8'), 'host\n');
  });
}

describe('unpackTar', () => {
  it('writes files, directories, links, devices and fifos with owner, mode and times', async () => {
    await withTempDir(async (dir) => {
      const root = path.join(dir, 'root');
      const tar = await tarBytes([
        { header: { name: 'etc/', type: 'directory', mode: 0o750, uid: 10, gid: 20, mtime: T2 } },
        { header: { name: 'etc/hosts', mode: 0o640, uid: 1000, gid: 1001, mtime: T1 }, body: 'hello\n' },
        { header: { name: 'bin/su', mode: 0o4755, uid: 0, gid: 0, mtime: T1 }, body: 'su' },
        { header: { name: 'bin/wall', mode: 0o2755, uid: 0, gid: 5, mtime: T1 }, body: 'w' },
        { header: { name: 'tmp/', type: 'directory', mode: 0o1777, mtime: T1 } },
        { header: { name: 'etc/link', type: 'symlink', linkname: '/etc/hosts', uid: 7, gid: 8, mtime: T2 } },
        { header: { name: 'etc/dangling', type: 'symlink', linkname: '../nowhere' } },
        {
          // A hard link's header carries the same metadata as its target (it is the same inode).
          header: {
            name: 'etc/hard',
            type: 'link',
            linkname: 'etc/hosts',
            mode: 0o640,
            uid: 1000,
            gid: 1001,
            mtime: T1,
          },
        },
        {
          header: {
            name: 'dev/null',
            type: 'character-device',
            devmajor: 1,
            devminor: 3,
            mode: 0o666,
            mtime: T1,
          },
        },
        {
          header: { name: 'dev/loop0', type: 'block-device', devmajor: 7, devminor: 0, mode: 0o660, gid: 6 },
        },
        { header: { name: 'run/fifo', type: 'fifo', mode: 0o620, uid: 3, gid: 4, mtime: T1 } },
        {
          header: { name: 'etc/tagged', mode: 0o600, pax: { 'SCHILY.xattr.user.note': 'tagged' } },
          body: 'x',
        },
      ]);
      const stats = await unpackInto(root, tar);
      assert.deepEqual(stats, { files: 12, bytes: 10, xattrsSkipped: 0 });

      const etc = await fs.lstat(path.join(root, 'etc'));
      assert.ok(etc.isDirectory());
      assert.equal(etc.mode & 0o7777, 0o750);
      assert.equal(etc.uid, 10);
      assert.equal(etc.gid, 20);
      // Children were added after the directory entry; its mtime still matches the header.
      assert.equal(etc.mtime.getTime(), T2.getTime());

      const hosts = await fs.lstat(path.join(root, 'etc/hosts'));
      assert.equal(await fs.readFile(path.join(root, 'etc/hosts'), 'utf8'), 'hello\n');
      assert.equal(hosts.mode & 0o7777, 0o640);
      assert.equal(hosts.uid, 1000);
      assert.equal(hosts.gid, 1001);
      assert.equal(hosts.mtime.getTime(), T1.getTime());
      assert.equal(hosts.nlink, 2);

      const hard = await fs.lstat(path.join(root, 'etc/hard'));
      assert.equal(hard.ino, hosts.ino);

      assert.equal((await fs.lstat(path.join(root, 'bin/su'))).mode & 0o7777, 0o4755);
      const wall = await fs.lstat(path.join(root, 'bin/wall'));
      assert.equal(wall.mode & 0o7777, 0o2755);
      assert.equal(wall.gid, 5);
      assert.equal((await fs.lstat(path.join(root, 'tmp'))).mode & 0o7777, 0o1777);
      // The implicitly created parent directory.
      assert.equal((await fs.lstat(path.join(root, 'bin'))).mode & 0o7777, 0o755);

      const link = await fs.lstat(path.join(root, 'etc/link'));
      assert.ok(link.isSymbolicLink());
      assert.equal(await fs.readlink(path.join(root, 'etc/link')), '/etc/hosts');
      assert.equal(link.uid, 7);
      assert.equal(link.gid, 8);
      assert.equal(link.mtime.getTime(), T2.getTime());
      assert.equal(await fs.readlink(path.join(root, 'etc/dangling')), '../nowhere');

      const devNull = await fs.lstat(path.join(root, 'dev/null'));
      assert.ok(devNull.isCharacterDevice());
      assert.equal(devNull.rdev, (1 << 8) | 3);
      assert.equal(devNull.mode & 0o7777, 0o666);
      assert.equal(devNull.mtime.getTime(), T1.getTime());
      const loop = await fs.lstat(path.join(root, 'dev/loop0'));
      assert.ok(loop.isBlockDevice());
      assert.equal(loop.rdev, 7 << 8);
      assert.equal(loop.mode & 0o7777, 0o660);
      assert.equal(loop.gid, 6);

      const fifo = await fs.lstat(path.join(root, 'run/fifo'));
      assert.ok(fifo.isFIFO());
      assert.equal(fifo.mode & 0o7777, 0o620);
      assert.equal(fifo.uid, 3);
      assert.equal(fifo.gid, 4);

      assert.equal(
        await getXattr(path.join(root, 'etc/tagged'), 'user.note'),
        `0x${Buffer.from('tagged').toString('hex')}`,
      );
    });
  });

  it('keeps binary xattr values byte for byte and applies PAX uid, gid and fractional mtime', async () => {
    await withTempDir(async (dir) => {
      const root = path.join(dir, 'root');
      const value = Buffer.from([0x01, 0x00, 0xff, 0x80, 0xc3, 0x28, 0x0a]);
      const tar = rawTarBytes([
        paxEntry(
          new Map([
            ['SCHILY.xattr.user.bin', value],
            ['uid', Buffer.from('3000000')],
            ['gid', Buffer.from('3000001')],
            ['mtime', Buffer.from('1600000000.5')],
          ]),
        ),
        { header: { name: 'bin/tool', typeflag: '0', mode: 0o755 }, data: Buffer.from('#!/bin/sh\n') },
        { header: { name: 'bin/plain', typeflag: '0' }, data: Buffer.from('p') },
      ]);
      await unpackInto(root, tar);
      const tool = path.join(root, 'bin/tool');
      assert.equal(await getXattr(tool, 'user.bin'), `0x${value.toString('hex')}`);
      const st = await fs.lstat(tool);
      assert.equal(st.uid, 3_000_000);
      assert.equal(st.gid, 3_000_001);
      assert.equal(st.mtimeMs, 1_600_000_000_500);
      assert.equal(await getXattr(path.join(root, 'bin/plain'), 'user.bin'), undefined);
    });
  });

  it('turns .wh.<name> into a 0/0 character device owned like the marker', async () => {
    await withTempDir(async (dir) => {
      const root = path.join(dir, 'root');
      const tar = await tarBytes([
        { header: { name: 'etc/', type: 'directory' } },
        { header: { name: 'etc/.wh.motd', uid: 12, gid: 34 }, body: '' },
        { header: { name: '.wh.toplevel' }, body: '' },
      ]);
      const stats = await unpackInto(root, tar);
      assert.equal(stats.files, 3);
      for (const [file, uid, gid] of [
        ['etc/motd', 12, 34],
        ['toplevel', 0, 0],
      ] as const) {
        const st = await fs.lstat(path.join(root, file));
        assert.ok(st.isCharacterDevice(), file);
        assert.equal(st.rdev, 0);
        assert.equal(st.uid, uid);
        assert.equal(st.gid, gid);
      }
      assert.equal(await exists(path.join(root, 'etc/.wh.motd')), false);
    });
  });

  it('turns .wh..wh..opq into trusted.overlay.opaque=y, before or after the children', async () => {
    await withTempDir(async (dir) => {
      const root = path.join(dir, 'root');
      const tar = await tarBytes([
        { header: { name: 'a/.wh..wh..opq' }, body: '' },
        { header: { name: 'a/', type: 'directory', mode: 0o700 } },
        { header: { name: 'a/new' }, body: 'n' },
        { header: { name: 'b/', type: 'directory' } },
        { header: { name: 'b/kept' }, body: 'k' },
        { header: { name: 'b/.wh..wh..opq' }, body: '' },
        { header: { name: 'c/', type: 'directory' } },
      ]);
      await unpackInto(root, tar);
      const y = `0x${Buffer.from('y').toString('hex')}`;
      assert.equal(await getXattr(path.join(root, 'a'), 'trusted.overlay.opaque'), y);
      assert.equal(await getXattr(path.join(root, 'b'), 'trusted.overlay.opaque'), y);
      assert.equal(await getXattr(path.join(root, 'c'), 'trusted.overlay.opaque'), undefined);
      assert.equal((await fs.lstat(path.join(root, 'a'))).mode & 0o7777, 0o700);
      assert.deepEqual(await fs.readdir(path.join(root, 'a')), ['new']);
      assert.deepEqual(await fs.readdir(path.join(root, 'b')), ['kept']);
    });
  });

  it('lets later entries replace earlier ones, merging directory over directory', async () => {
    await withTempDir(async (dir) => {
      const root = path.join(dir, 'root');
      const outside = path.join(dir, 'outside');
      await fs.writeFile(outside, 'untouched');
      const tar = await tarBytes([
        { header: { name: 'f' }, body: 'first' },
        { header: { name: 'f' }, body: 'second' },
        { header: { name: 'd/', type: 'directory', mode: 0o755 } },
        { header: { name: 'd/child' }, body: 'c' },
        { header: { name: 'd/', type: 'directory', mode: 0o711 } },
        { header: { name: 'x/', type: 'directory' } },
        { header: { name: 'x/inner' }, body: 'i' },
        { header: { name: 'x' }, body: 'now a file' },
        // A symlink pointing outside, then a regular file of the same name: the file replaces
        // the link, it is not written through it.
        { header: { name: 'l', type: 'symlink', linkname: outside } },
        { header: { name: 'l' }, body: 'replaced' },
      ]);
      await unpackInto(root, tar);
      assert.equal(await fs.readFile(path.join(root, 'f'), 'utf8'), 'second');
      assert.equal((await fs.lstat(path.join(root, 'd'))).mode & 0o7777, 0o711);
      assert.deepEqual(await fs.readdir(path.join(root, 'd')), ['child']);
      assert.equal(await fs.readFile(path.join(root, 'x'), 'utf8'), 'now a file');
      assert.ok((await fs.lstat(path.join(root, 'l'))).isFile());
      assert.equal(await fs.readFile(path.join(root, 'l'), 'utf8'), 'replaced');
      assert.equal(await fs.readFile(outside, 'utf8'), 'untouched');
    });
  });

  it('accepts ./-prefixed names and ignores the root entry', async () => {
    await withTempDir(async (dir) => {
      const root = path.join(dir, 'root');
      const tar = await tarBytes([
        { header: { name: './', type: 'directory', mode: 0o700 } },
        { header: { name: './usr/./lib/../bin/x' }, body: 'x' },
      ]);
      await unpackInto(root, tar);
      assert.equal(await fs.readFile(path.join(root, 'usr/bin/x'), 'utf8'), 'x');
      assert.equal((await fs.lstat(root)).mode & 0o777, 0o755);
    });
  });

  it('skips xattrs reserved for overlayfs and counts them', async () => {
    await withTempDir(async (dir) => {
      const root = path.join(dir, 'root');
      const tar = await tarBytes([
        {
          header: {
            name: 'd/',
            type: 'directory',
            pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc', 'SCHILY.xattr.user.ok': '1' },
          },
        },
      ]);
      const stats = await unpackInto(root, tar);
      assert.equal(stats.xattrsSkipped, 1);
      assert.equal(await getXattr(path.join(root, 'd'), 'trusted.overlay.redirect'), undefined);
      assert.equal(await getXattr(path.join(root, 'd'), 'user.ok'), '0x31');
    });
  });

  describe('refuses hostile archives, naming the entry', () => {
    it('a name climbing out with ..', () =>
      assertRefused([{ header: { name: '../x' }, body: 'x' }], '../x', /escapes the layer directory/));

    it('an absolute name', () =>
      assertRefused([{ header: { name: '/abs' }, body: 'x' }], '/abs', /absolute path/));

    it('a name that climbs out after going down', () =>
      assertRefused(
        [{ header: { name: 'a/../../x' }, body: 'x' }],
        'a/../../x',
        /escapes the layer directory/,
      ));

    it('a file written through a symlink to /etc', async () => {
      await withTempDir(async (dir) => {
        const target = path.join(dir, 'etc');
        await assertRefused(
          [
            { header: { name: 'evil', type: 'symlink', linkname: '/etc' } },
            { header: { name: 'evil/passwd' }, body: 'root::0:0::/:/bin/sh\n' },
          ],
          'evil/passwd',
          /goes through the symbolic link "evil"/,
        );
        assert.equal(await exists(target), false);
      });
    });

    it('a file written through a symlink to ..', () =>
      assertRefused(
        [
          { header: { name: 'up', type: 'symlink', linkname: '..' } },
          { header: { name: 'up/outside/passwd' }, body: 'x' },
        ],
        'up/outside/passwd',
        /goes through the symbolic link "up"/,
      ));

    it('a hard link to a file outside the layer', () =>
      assertRefused(
        [{ header: { name: 'shadow', type: 'link', linkname: '../../etc/shadow' } }],
        'shadow',
        /hard link to "..\/..\/etc\/shadow", which escapes the layer directory/,
      ));

    it('a hard link through a symlink', () =>
      assertRefused(
        [
          { header: { name: 'up', type: 'symlink', linkname: '..' } },
          { header: { name: 'h', type: 'link', linkname: 'up/outside/passwd' } },
        ],
        'h',
        /goes through the symbolic link "up"/,
      ));

    it('a hard link to something not (yet) in the layer', () =>
      assertRefused(
        [{ header: { name: 'h', type: 'link', linkname: 'later' } }],
        'h',
        /which is not in the layer/,
      ));

    it('a NUL byte in a name', () =>
      assertRefused(
        [{ header: { name: 'ok', pax: { path: 'evil\0name' } }, body: 'x' }],
        'evil\0name',
        /NUL byte/,
      ));

    it('a whiteout that names no file', () =>
      assertRefused([{ header: { name: 'a/.wh..' }, body: '' }], 'a/.wh..', /not a valid whiteout/));

    it('an entry type a layer must not contain (GNU sparse)', () =>
      assertRefused(
        rawTarBytes([{ header: { name: 'sparse', typeflag: 'S' }, data: Buffer.from('x') }]),
        'sparse',
        /unsupported tar entry type/,
      ));
  });

  it('reports a stream that is not a tar archive', async () => {
    await withTempDir(async (dir) => {
      const root = path.join(dir, 'root');
      await assert.rejects(unpackInto(root, Buffer.alloc(2048, 0x41)), (err: unknown) => {
        assert.ok(err instanceof FailedPreconditionError);
        assert.match(err.message, /^layer sha256:0123 is not a valid tar archive/);
        return true;
      });
    });
  });

  it('rethrows errors of the source stream unchanged', async () => {
    await withTempDir(async (dir) => {
      const root = path.join(dir, 'root');
      await fs.mkdir(root);
      const boom = new Error('disk on fire');
      const source = new Readable({
        read() {
          this.destroy(boom);
        },
      });
      await assert.rejects(unpackTar(source, root, { label: LABEL }), (err: unknown) => {
        assert.equal(err, boom);
        assert.ok(!(err instanceof CrispError));
        return true;
      });
    });
  });
});
