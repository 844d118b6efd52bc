import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import { DEFAULT_PATH, mergeEnv, resolveArgs } from './args.js';

interface Row {
  name: string;
  command: string[];
  args: string[];
  entrypoint: string[];
  cmd: string[];
  want: string[] | 'error';
}

const rows: Row[] = [
  { name: 'image only', command: [], args: [], entrypoint: ['/ep'], cmd: ['c1'], want: ['/ep', 'c1'] },
  {
    name: 'image entrypoint only',
    command: [],
    args: [],
    entrypoint: ['/ep', '-x'],
    cmd: [],
    want: ['/ep', '-x'],
  },
  { name: 'image cmd only', command: [], args: [], entrypoint: [], cmd: ['/bin/sh'], want: ['/bin/sh'] },
  {
    name: 'args replace cmd',
    command: [],
    args: ['a1'],
    entrypoint: ['/ep'],
    cmd: ['c1'],
    want: ['/ep', 'a1'],
  },
  {
    name: 'args without entrypoint',
    command: [],
    args: ['/a', 'b'],
    entrypoint: [],
    cmd: ['c'],
    want: ['/a', 'b'],
  },
  {
    name: 'command ignores entrypoint and cmd',
    command: ['/cmd'],
    args: [],
    entrypoint: ['/ep'],
    cmd: ['c1'],
    want: ['/cmd'],
  },
  {
    name: 'command + args',
    command: ['/cmd', '-v'],
    args: ['a1'],
    entrypoint: ['/ep'],
    cmd: ['c1'],
    want: ['/cmd', '-v', 'a1'],
  },
  {
    name: 'entrypoint [""] is cleared',
    command: [],
    args: [],
    entrypoint: [''],
    cmd: ['/bin/sh'],
    want: ['/bin/sh'],
  },
  {
    name: 'entrypoint [""] with args',
    command: [],
    args: ['/a'],
    entrypoint: [''],
    cmd: ['c'],
    want: ['/a'],
  },
  { name: 'entrypoint [""] and no cmd', command: [], args: [], entrypoint: [''], cmd: [], want: 'error' },
  { name: 'nothing at all', command: [], args: [], entrypoint: [], cmd: [], want: 'error' },
];

describe('resolveArgs', () => {
  for (const row of rows) {
    it(row.name, () => {
      const run = () => resolveArgs(row.command, row.args, { entrypoint: row.entrypoint, cmd: row.cmd });
      if (row.want === 'error') {
        assert.throws(run, (err: unknown) => {
          assert.ok(err instanceof InvalidArgumentError);
          assert.equal(err.field, 'config.command');
          assert.match(err.message, /no command specified/);
          return true;
        });
      } else {
        assert.deepEqual(run(), row.want);
      }
    });
  }

  it('does not alias the image arrays', () => {
    const image = { entrypoint: ['/ep'], cmd: ['c'] };
    const argv = resolveArgs([], [], image);
    argv.push('x');
    assert.deepEqual(image, { entrypoint: ['/ep'], cmd: ['c'] });
  });
});

describe('mergeEnv', () => {
  it('puts the default PATH and HOSTNAME first, then image, then CRI', () => {
    assert.deepEqual(mergeEnv(['A=1'], [{ key: 'B', value: '2' }], 'pod-host'), [
      `PATH=${DEFAULT_PATH}`,
      'HOSTNAME=pod-host',
      'A=1',
      'B=2',
    ]);
  });

  it('lets the image PATH replace the default, in place', () => {
    assert.deepEqual(mergeEnv(['X=1', 'PATH=/bin'], []), ['PATH=/bin', 'X=1']);
  });

  it('lets CRI envs win over the image, and later CRI envs win over earlier ones', () => {
    assert.deepEqual(
      mergeEnv(
        ['A=image', 'B=image'],
        [
          { key: 'A', value: 'cri' },
          { key: 'C', value: '1' },
          { key: 'C', value: '2' },
        ],
      ),
      [`PATH=${DEFAULT_PATH}`, 'A=cri', 'B=image', 'C=2'],
    );
  });

  it('lets the image or the request override HOSTNAME', () => {
    assert.deepEqual(mergeEnv([], [{ key: 'HOSTNAME', value: 'mine' }], 'pod'), [
      `PATH=${DEFAULT_PATH}`,
      'HOSTNAME=mine',
    ]);
  });

  it('keeps values containing "=" and empty values', () => {
    assert.deepEqual(mergeEnv(['A=b=c', 'E='], [{ key: 'F', value: '' }]), [
      `PATH=${DEFAULT_PATH}`,
      'A=b=c',
      'E=',
      'F=',
    ]);
  });

  it('treats an image entry without "=" as an unset', () => {
    assert.deepEqual(mergeEnv(['A=1', 'A', 'PATH'], []), []);
  });

  it('adds no HOSTNAME without a hostname', () => {
    assert.deepEqual(mergeEnv([], []), [`PATH=${DEFAULT_PATH}`]);
  });

  it('rejects a CRI env without a name (runc refuses one)', () => {
    for (const key of ['', '=B']) {
      assert.throws(
        () => mergeEnv([], [{ key, value: 'v' }]),
        (err: unknown) => err instanceof InvalidArgumentError && err.field === 'config.envs[0].key',
      );
    }
  });

  it('reads a CRI env key holding "=" as containerd does: named by what comes before it', () => {
    assert.deepEqual(mergeEnv([], [{ key: 'A=B', value: 'v' }]), [`PATH=${DEFAULT_PATH}`, 'A=B=v']);
  });
});
