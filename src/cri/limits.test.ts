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
  checkMetadataName,
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

  it('takes any non-empty id: one that is no crisp id simply finds nothing (NOT_FOUND)', () => {
    assert.equal(requireId('a'.repeat(64), 'container_id'), 'a'.repeat(64));
    assert.equal(requireId('abc', 'container_id'), 'abc');
    assert.equal(requireId('a'.repeat(65), 'container_id'), 'a'.repeat(65));
    assert.equal(requireId('ab\u0007', 'container_id'), 'ab\u0007');
    refuses(() => requireId('', 'container_id'), 'container_id', /required/);
  });

  it('takes the names kubelet, critest and crictl send, and what containerd and CRI-O take', () => {
    const pod = { required: true, cniArgs: true };
    for (const ok of [
      'nginx',
      'web-0',
      'kube-system',
      'my.pod.1',
      'f3b1c2d4-0000-4e5f-8a9b-0123456789ab',
      // critest: mixed case, over 64 characters
      `create-PodSandbox-for-container-${'0'.repeat(36)}`,
      'a_b',
      'name with spaces',
      'ütf-8',
      'tab\there',
    ]) {
      assert.equal(checkMetadataName(ok, 'config.metadata.name', pod), ok);
    }
    // namespace and uid may be empty, as in containerd and CRI-O; a name may not (CRI-O refuses).
    assert.equal(checkMetadataName('', 'config.metadata.uid', { required: false, cniArgs: true }), '');
    refuses(() => checkMetadataName('', 'config.metadata.name', pod), 'config.metadata.name', /required/);
    refuses(
      () => checkMetadataName('a'.repeat(LIMITS.metadataBytes + 1), 'config.metadata.name', pod),
      'config.metadata.name',
      /1025 bytes/,
    );
    // What protobufjs makes of invalid UTF-8 (grpc-go refuses the whole message).
    refuses(
      () => checkMetadataName('bad\ufffdname', 'config.metadata.uid', pod),
      'config.metadata.uid',
      /invalid UTF-8/,
    );
    // conmon gets the name in argv.
    refuses(() => checkMetadataName('a\u0000b', 'config.metadata.name', pod), 'config.metadata.name', /NUL/);
    // CNI_ARGS cannot carry ";" or "=" in a pod's name, namespace or uid; a container's name may hold them.
    refuses(
      () => checkMetadataName('a;IP=10.0.0.1', 'config.metadata.name', pod),
      'config.metadata.name',
      /CNI_ARGS/,
    );
    assert.equal(
      checkMetadataName('a;b=c', 'config.metadata.name', { required: true, cniArgs: false }),
      'a;b=c',
    );
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
    // An empty key or control characters: containerd and CRI-O take them, so does crisp.
    checkLabels({ '': 'v', 'a\tb': 'x\u0001y' }, 'config.labels');
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
    // "=" in a key: the variable is named by what precedes it (container/args.ts), as in containerd.
    checkArgvEnv([], [{ key: 'A=B', value: 'v' }]);
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

  it('reads negative timeouts as 0 and caps huge ones, as containerd and CRI-O read them', () => {
    assert.equal(timeoutSeconds(''), 0);
    assert.equal(timeoutSeconds('30'), 30);
    assert.equal(timeoutSeconds('-1'), 0);
    assert.equal(timeoutSeconds('-9223372036854775808'), 0);
    assert.equal(timeoutSeconds('9007199254740991'), Number.MAX_SAFE_INTEGER);
    assert.equal(timeoutSeconds('9223372036854775807'), Number.MAX_SAFE_INTEGER);
  });
});
