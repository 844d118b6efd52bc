import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import { deviceAccess, hostDevices, resolveDevices, splitDevNumber } from './devices.js';

const run = promisify(execFile);

describe('splitDevNumber', () => {
  it('decodes small and large device numbers', () => {
    assert.deepEqual(splitDevNumber(0x0103n), { major: 1, minor: 3 });
    assert.deepEqual(splitDevNumber(0x0a00n + 229n), { major: 10, minor: 229 });
    // major 259, minor 1048575 (the 20-bit maximum) in glibc's encoding.
    const major = 259n;
    const minor = 0xfffffn;
    const rdev =
      ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
    assert.deepEqual(splitDevNumber(rdev), { major: 259, minor: 0xfffff });
  });
});

describe('deviceAccess', () => {
  it('takes some of rwm, each once, and all three for empty', () => {
    assert.equal(deviceAccess('', 'f'), 'rwm');
    assert.equal(deviceAccess('mrw', 'f'), 'mrw');
    assert.equal(deviceAccess('r', 'f'), 'r');
    for (const bad of ['x', 'rr', 'rwmx', 'RW', ' r']) {
      assert.throws(
        () => deviceAccess(bad, 'config.devices[0].permissions'),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === 'config.devices[0].permissions' &&
          err.message.includes(JSON.stringify(bad)),
      );
    }
  });
});

describe('resolveDevices', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crisp-devices-'));
    await run('mknod', ['-m', '0640', join(dir, 'mynull'), 'c', '1', '3']);
    await mkdir(join(dir, 'group', 'sub'), { recursive: true });
    await run('mknod', [join(dir, 'group', 'a'), 'c', '1', '5']);
    await run('mknod', [join(dir, 'group', 'sub', 'b'), 'b', '7', '1']);
    await writeFile(join(dir, 'group', 'not-a-device'), 'x');
    await mkdir(join(dir, 'empty'));
    await writeFile(join(dir, 'file'), 'x');
    await symlink(join(dir, 'mynull'), join(dir, 'link'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads type, numbers, mode and owner from the host node, through symlinks', async () => {
    const [d] = await resolveDevices([
      { hostPath: join(dir, 'link'), containerPath: '/dev/x//y', permissions: 'rw' },
    ]);
    assert.deepEqual(d, {
      path: '/dev/x/y',
      type: 'c',
      major: 1,
      minor: 3,
      fileMode: 0o640,
      uid: 0,
      gid: 0,
      access: 'rw',
    });
  });

  it('takes every device node under a directory, at the same relative path', async () => {
    const found = await resolveDevices([
      { hostPath: join(dir, 'group'), containerPath: '/dev/g', permissions: '' },
    ]);
    assert.deepEqual(found.map((d) => [d.path, d.type, d.major, d.minor, d.access]).sort(), [
      ['/dev/g/a', 'c', 1, 5, 'rwm'],
      ['/dev/g/sub/b', 'b', 7, 1, 'rwm'],
    ]);
  });

  it('refuses what it cannot honour, naming the field', async () => {
    const cases: [Parameters<typeof resolveDevices>[0][number], string, RegExp][] = [
      [
        { hostPath: join(dir, 'nope'), containerPath: '/dev/n', permissions: 'r' },
        'host_path',
        /does not exist/,
      ],
      [
        { hostPath: join(dir, 'file'), containerPath: '/dev/n', permissions: 'r' },
        'host_path',
        /not a character or block/,
      ],
      [
        { hostPath: join(dir, 'empty'), containerPath: '/dev/n', permissions: 'r' },
        'host_path',
        /holds no device/,
      ],
      [
        { hostPath: 'dev/null', containerPath: '/dev/n', permissions: 'r' },
        'host_path',
        /not an absolute path/,
      ],
      [
        { hostPath: '/dev/null', containerPath: 'dev/n', permissions: 'r' },
        'container_path',
        /not an absolute path/,
      ],
      [
        { hostPath: '/dev/null', containerPath: '/dev/n', permissions: 'rx' },
        'permissions',
        /not a device permission/,
      ],
    ];
    for (const [device, field, message] of cases) {
      await assert.rejects(
        resolveDevices([{ hostPath: '/dev/null', containerPath: '/dev/ok', permissions: 'r' }, device]),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === `config.devices[1].${field}` &&
          message.test(err.message),
      );
    }
  });

  it('refuses two devices at one container path', async () => {
    await assert.rejects(
      resolveDevices([
        { hostPath: '/dev/null', containerPath: '/dev/n', permissions: 'r' },
        { hostPath: '/dev/zero', containerPath: '/dev/n/', permissions: 'r' },
      ]),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === 'config.devices[1].container_path' &&
        err.message.includes('config.devices[0]'),
    );
  });
});

describe('hostDevices', () => {
  it("lists the host's /dev device nodes, without pts and console", async () => {
    const devices = await hostDevices();
    const nul = devices.find((d) => d.path === '/dev/null');
    assert.deepEqual(nul && [nul.type, nul.major, nul.minor], ['c', 1, 3]);
    assert.equal(
      devices.some((d) => d.path.startsWith('/dev/pts/') || d.path === '/dev/console'),
      false,
    );
    assert.ok(devices.every((d) => d.access === 'rwm'));
  });
});
