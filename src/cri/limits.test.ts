import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import {
  LIMITS,
  checkAnnotations,
  checkArgvEnv,
  checkLabels,
  checkPath,
  checkPrintable,
  requireId,
  requireImageSpec,
  requireMetadataName,
  timeoutSeconds,
  utf8Bytes,
} from './limits.js';

/** Asserts `fn` throws InvalidArgumentError for a field matching `field`, with a message matching `re`. */
function refuses(fn: () => unknown, field: string | RegExp, re?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, String(err));
    if (typeof field === 'string') assert.equal(err.field, field);
    else assert.match(err.field, field);
    if (re) assert.match(err.message, re);
    return true;
  });
}

describe('request limits', () => {
  it('counts UTF-8 bytes, not characters', () => {
    assert.equal(utf8Bytes('abc'), 3);
    assert.equal(utf8Bytes('é'.repeat(100)), 200);
    refuses(
      () => checkPrintable('é'.repeat(200), 'f', 300),
      'f',
      /400 bytes long; crisp accepts at most 300/,
    );
  });

  it('takes ids of up to 64 characters and refuses longer, empty or unprintable ones', () => {
    assert.equal(requireId('a'.repeat(64), 'container_id'), 'a'.repeat(64));
    assert.equal(requireId('abc', 'container_id'), 'abc');
    refuses(() => requireId('', 'container_id'), 'container_id', /required/);
    refuses(() => requireId('a'.repeat(65), 'container_id'), 'container_id', /not an id/);
    refuses(() => requireId('x'.repeat(1 << 20), 'pod_sandbox_id'), 'pod_sandbox_id', /1048576 characters/);
    refuses(() => requireId('ab\u0000', 'container_id'), 'container_id', /control character/);
  });

  it('takes Kubernetes-style names and refuses the rest, naming the field', () => {
    for (const ok of [
      'nginx',
      'web-0',
      'a',
      'kube-system',
      'my.pod.1',
      'f3b1c2d4-0000-4e5f-8a9b-0123456789ab',
    ]) {
      assert.equal(requireMetadataName(ok, 'config.metadata.name'), ok);
    }
    refuses(() => requireMetadataName('', 'config.metadata.name'), 'config.metadata.name', /required/);
    refuses(
      () => requireMetadataName('a'.repeat(254), 'config.metadata.name'),
      'config.metadata.name',
      /254 bytes/,
    );
    refuses(() => requireMetadataName('x'.repeat(1 << 20), 'config.metadata.name'), 'config.metadata.name');
    // What protobufjs makes of invalid UTF-8.
    refuses(
      () => requireMetadataName('bad\ufffdname', 'config.metadata.uid'),
      'config.metadata.uid',
      /invalid UTF-8/,
    );
    refuses(
      () => requireMetadataName('new\nline', 'config.metadata.name'),
      'config.metadata.name',
      /control/,
    );
    // "_" separates the parts of reserved names: a_b/c and a/b_c would collide.
    refuses(
      () => requireMetadataName('a_b', 'config.metadata.namespace'),
      'config.metadata.namespace',
      /DNS-1123/,
    );
    for (const bad of ['../x', 'a/b', '-a', 'a-', '.', 'a b']) {
      refuses(() => requireMetadataName(bad, 'config.metadata.name'), 'config.metadata.name');
    }
  });

  it('bounds labels by count, key and value size', () => {
    checkLabels({ app: 'web', 'io.kubernetes.pod.name': 'p'.repeat(253) }, 'config.labels');
    const many = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, 'v']));
    refuses(
      () => {
        checkLabels(many, 'config.labels');
      },
      'config.labels',
      /10000 entries.*at most 1024/,
    );
    refuses(() => {
      checkLabels({ ['k'.repeat(LIMITS.keyBytes + 1)]: 'v' }, 'config.labels');
    }, /^config\.labels key/);
    refuses(
      () => {
        checkLabels({ '': 'v' }, 'config.labels');
      },
      'config.labels',
      /empty key/,
    );
    refuses(
      () => {
        checkLabels({ a: 'v'.repeat(1025) }, 'config.labels');
      },
      'config.labels["a"]',
      /1025 bytes/,
    );
    refuses(
      () => {
        checkLabels({ a: 'x\ufffd' }, 'config.labels');
      },
      'config.labels["a"]',
      /invalid UTF-8/,
    );
  });

  it('bounds annotations by their total size, not their count', () => {
    const many = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, 'v']));
    checkAnnotations(many, 'config.annotations');
    checkAnnotations({ json: '{"a":\n1}' }, 'config.annotations');
    refuses(
      () => {
        checkAnnotations({ a: 'x'.repeat(300 * 1024), b: 'y'.repeat(300 * 1024) }, 'config.annotations');
      },
      'config.annotations',
      /exceed 524288 bytes/,
    );
  });

  it('refuses NUL in paths and relative paths where one must be absolute', () => {
    assert.equal(checkPath('', 'config.working_dir', { absolute: true }), '');
    assert.equal(checkPath('/work', 'config.working_dir', { absolute: true }), '/work');
    refuses(
      () => checkPath('work', 'config.working_dir', { absolute: true }),
      'config.working_dir',
      /absolute/,
    );
    refuses(() => checkPath('/a\u0000b', 'config.mounts[0].host_path'), 'config.mounts[0].host_path', /NUL/);
    refuses(() => checkPath(`/${'a'.repeat(4096)}`, 'config.log_path'), 'config.log_path', /4097 bytes/);
  });

  it('bounds argv and environment as execve does', () => {
    checkArgvEnv([{ list: ['sh', '-c', 'echo hi'], field: 'config.command' }], [{ key: 'A', value: 'b=c' }]);
    refuses(
      () => {
        checkArgvEnv([{ list: ['a\u0000b'], field: 'cmd' }]);
      },
      'cmd[0]',
      /NUL/,
    );
    refuses(() => {
      checkArgvEnv([{ list: ['x'.repeat(128 * 1024 + 1)], field: 'cmd' }]);
    }, 'cmd[0]');
    const big = Array.from({ length: 20 }, () => 'x'.repeat(127 * 1024));
    refuses(
      () => {
        checkArgvEnv([{ list: big, field: 'config.args' }]);
      },
      'config.args',
      /2097152 bytes/,
    );
    refuses(
      () => {
        checkArgvEnv([], [{ key: '', value: 'v' }]);
      },
      'config.envs[0].key',
      /required/,
    );
    refuses(
      () => {
        checkArgvEnv([], [{ key: 'A=B', value: 'v' }]);
      },
      'config.envs[0].key',
      /"="/,
    );
    refuses(
      () => {
        checkArgvEnv([], [{ key: 'A', value: 'v\u0000' }]);
      },
      'config.envs[0].value',
      /NUL/,
    );
  });

  it('bounds image references and refuses whitespace in them', () => {
    assert.equal(requireImageSpec('busybox', 'image.image'), 'busybox');
    refuses(() => requireImageSpec('', 'image.image'), 'image.image', /required/);
    refuses(() => requireImageSpec('a b', 'image.image'), 'image.image', /whitespace/);
    refuses(
      () => requireImageSpec('a'.repeat(1025), 'config.image.image'),
      'config.image.image',
      /1025 bytes/,
    );
  });

  it('refuses negative and non-integer timeouts instead of reading them as 0', () => {
    assert.equal(timeoutSeconds('', 'timeout'), 0);
    assert.equal(timeoutSeconds('30', 'timeout'), 30);
    assert.equal(timeoutSeconds('9007199254740991', 'timeout'), Number.MAX_SAFE_INTEGER);
    refuses(() => timeoutSeconds('-1', 'timeout'), 'timeout', /non-negative/);
    refuses(() => timeoutSeconds('9223372036854775807', 'timeout'), 'timeout');
  });
});
