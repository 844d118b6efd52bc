import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import {
  isDigest,
  isIdPrefix,
  isImageId,
  normaliseImageId,
  parseReference,
  referenceFrom,
  withDigest,
} from './reference.js';

const HEX = 'a'.repeat(64);
const D256 = `sha256:${'0123456789abcdef'.repeat(4)}`;
const D512 = `sha512:${'0123456789abcdef'.repeat(8)}`;

interface Good {
  input: string;
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
  full: string;
  shortName: boolean;
}

const good: Good[] = [
  {
    input: 'busybox',
    registry: 'docker.io',
    repository: 'library/busybox',
    tag: 'latest',
    full: 'docker.io/library/busybox:latest',
    shortName: true,
  },
  {
    input: 'library/busybox',
    registry: 'docker.io',
    repository: 'library/busybox',
    tag: 'latest',
    full: 'docker.io/library/busybox:latest',
    shortName: true,
  },
  {
    input: 'foo/bar:1.0',
    registry: 'docker.io',
    repository: 'foo/bar',
    tag: '1.0',
    full: 'docker.io/foo/bar:1.0',
    shortName: true,
  },
  {
    input: 'docker.io/busybox',
    registry: 'docker.io',
    repository: 'library/busybox',
    tag: 'latest',
    full: 'docker.io/library/busybox:latest',
    shortName: false,
  },
  {
    input: 'index.docker.io/library/busybox',
    registry: 'docker.io',
    repository: 'library/busybox',
    tag: 'latest',
    full: 'docker.io/library/busybox:latest',
    shortName: false,
  },
  {
    input: 'index.docker.io/busybox:musl',
    registry: 'docker.io',
    repository: 'library/busybox',
    tag: 'musl',
    full: 'docker.io/library/busybox:musl',
    shortName: false,
  },
  {
    input: 'localhost/x',
    registry: 'localhost',
    repository: 'x',
    tag: 'latest',
    full: 'localhost/x:latest',
    shortName: false,
  },
  {
    input: 'localhost:5000/x',
    registry: 'localhost:5000',
    repository: 'x',
    tag: 'latest',
    full: 'localhost:5000/x:latest',
    shortName: false,
  },
  {
    // An upper-case host is still a host (it has a ":" or "."); hosts may be upper case.
    input: 'LOCALHOST:5000/x',
    registry: 'LOCALHOST:5000',
    repository: 'x',
    tag: 'latest',
    full: 'LOCALHOST:5000/x:latest',
    shortName: false,
  },
  {
    input: 'Registry.Example.test/a',
    registry: 'Registry.Example.test',
    repository: 'a',
    tag: 'latest',
    full: 'Registry.Example.test/a:latest',
    shortName: false,
  },
  {
    input: 'registry.example.test:5000/a/b:v1.2_rc-3',
    registry: 'registry.example.test:5000',
    repository: 'a/b',
    tag: 'v1.2_rc-3',
    full: 'registry.example.test:5000/a/b:v1.2_rc-3',
    shortName: false,
  },
  {
    input: '127.0.0.1:5000/ns/repo',
    registry: '127.0.0.1:5000',
    repository: 'ns/repo',
    tag: 'latest',
    full: '127.0.0.1:5000/ns/repo:latest',
    shortName: false,
  },
  {
    input: 'quay.io/a/b/c/d:TAG',
    registry: 'quay.io',
    repository: 'a/b/c/d',
    tag: 'TAG',
    full: 'quay.io/a/b/c/d:TAG',
    shortName: false,
  },
  {
    input: `quay.io/a/b@${D256}`,
    registry: 'quay.io',
    repository: 'a/b',
    digest: D256,
    full: `quay.io/a/b@${D256}`,
    shortName: false,
  },
  {
    input: `busybox@${D256}`,
    registry: 'docker.io',
    repository: 'library/busybox',
    digest: D256,
    full: `docker.io/library/busybox@${D256}`,
    shortName: true,
  },
  {
    input: `busybox:1.36@${D256}`,
    registry: 'docker.io',
    repository: 'library/busybox',
    digest: D256,
    full: `docker.io/library/busybox@${D256}`,
    shortName: true,
  },
  {
    input: `localhost:5000/x:tag@${D512}`,
    registry: 'localhost:5000',
    repository: 'x',
    digest: D512,
    full: `localhost:5000/x@${D512}`,
    shortName: false,
  },
  {
    input: 'a0-b__c_d_e---f/g.h',
    registry: 'docker.io',
    repository: 'a0-b__c_d_e---f/g.h',
    tag: 'latest',
    full: 'docker.io/a0-b__c_d_e---f/g.h:latest',
    shortName: true,
  },
  {
    // A "." in the first element makes it a registry.
    input: 'a.b/c',
    registry: 'a.b',
    repository: 'c',
    tag: 'latest',
    full: 'a.b/c:latest',
    shortName: false,
  },
  {
    // No "/" so "localhost" is a repository and "5000" its tag (as docker reads it).
    input: 'localhost:5000',
    registry: 'docker.io',
    repository: 'library/localhost',
    tag: '5000',
    full: 'docker.io/library/localhost:5000',
    shortName: true,
  },
  {
    input: `t:${'a'.repeat(128)}`,
    registry: 'docker.io',
    repository: 'library/t',
    tag: 'a'.repeat(128),
    full: `docker.io/library/t:${'a'.repeat(128)}`,
    shortName: true,
  },
  {
    // Not an image id: "sha256:" with a short hex is a repository "sha256" with a tag.
    input: 'sha256:abc',
    registry: 'docker.io',
    repository: 'library/sha256',
    tag: 'abc',
    full: 'docker.io/library/sha256:abc',
    shortName: true,
  },
  {
    input: `example.test/${'a'.repeat(255 - 'example.test/'.length)}`,
    registry: 'example.test',
    repository: 'a'.repeat(255 - 'example.test/'.length),
    tag: 'latest',
    full: `example.test/${'a'.repeat(255 - 'example.test/'.length)}:latest`,
    shortName: false,
  },
];

const bad: { input: string; why: RegExp }[] = [
  { input: '', why: /it is empty/ },
  { input: 'Busybox', why: /repository names must be lowercase/ },
  { input: 'docker.io/Library/busybox', why: /must be lowercase/ },
  { input: 'LOCALHOST/x', why: /must be lowercase/ },
  { input: 'localhost:5000/X', why: /must be lowercase/ },
  { input: 'busybox:', why: /tag after ":" is empty/ },
  { input: 'busybox:-x', why: /tag "-x" is not valid/ },
  { input: 'busybox:.x', why: /tag ".x" is not valid/ },
  { input: 'busybox:a/b', why: /./ },
  { input: 'busybox:tag with space', why: /tag "tag with space" is not valid/ },
  { input: `busybox:${'a'.repeat(129)}`, why: /longer than 128/ },
  { input: `example.test/${'a'.repeat(256 - 'example.test/'.length)}`, why: /longer than 255/ },
  { input: 'a'.repeat(256 - 'docker.io/library/'.length), why: /longer than 255/ },
  { input: 'busybox@', why: /digest "" is not valid/ },
  { input: 'busybox@sha256:abc', why: /exactly 64 lower-case hex/ },
  { input: `busybox@sha256:${'A'.repeat(64)}`, why: /exactly 64 lower-case hex/ },
  { input: `busybox@sha512:${HEX}`, why: /exactly 128 lower-case hex/ },
  { input: `busybox@md5:${'a'.repeat(32)}`, why: /"md5" is not supported/ },
  { input: `busybox@${HEX}`, why: /expected <algorithm>:<hex>/ },
  { input: `busybox@${D256}@${D256}`, why: /digest/ },
  { input: 'quay.io/', why: /repository path is empty/ },
  { input: 'quay.io//a', why: /empty component/ },
  { input: 'a/b/', why: /empty component/ },
  { input: '/a', why: /empty component/ },
  { input: 'a..b', why: /component "a\.\.b" is not valid/ },
  { input: 'a___b', why: /not valid/ },
  { input: '-a', why: /not valid/ },
  { input: 'a-', why: /not valid/ },
  { input: 'quay.io:/a', why: /registry host "quay.io:" is not a valid/ },
  { input: '-bad.host/a', why: /registry host "-bad.host"/ },
  { input: 'host:port:5000/a', why: /registry host/ },
  { input: 'https://quay.io/a', why: /not a valid/ },
  { input: ' busybox', why: /not valid/ },
  { input: HEX, why: /looks like an image id/ },
  { input: `sha256:${HEX}`, why: /looks like an image id/ },
];

describe('parseReference', () => {
  for (const c of good) {
    it(`parses ${JSON.stringify(c.input)}`, () => {
      const ref = parseReference(c.input);
      assert.deepEqual(ref, {
        registry: c.registry,
        repository: c.repository,
        tag: c.tag,
        digest: c.digest,
        name: `${c.registry}/${c.repository}`,
        full: c.full,
        shortName: c.shortName,
      });
    });
  }

  for (const c of bad) {
    it(`refuses ${JSON.stringify(c.input.length > 60 ? `${c.input.slice(0, 57)}...` : c.input)}`, () => {
      assert.throws(
        () => parseReference(c.input),
        (err: unknown) => {
          assert.ok(err instanceof InvalidArgumentError, String(err));
          assert.equal(err.field, 'image');
          assert.ok(
            err.message.startsWith(
              `invalid image: ${JSON.stringify(c.input)} is not a valid image reference: `,
            ),
            err.message,
          );
          assert.match(err.message, c.why);
          return true;
        },
      );
    });
  }

  it('words the upper-case error as the design shows', () => {
    assert.throws(() => parseReference('Busybox'), {
      message: 'invalid image: "Busybox" is not a valid image reference: repository names must be lowercase',
    });
  });

  it('round-trips the full form', () => {
    for (const c of good) {
      const ref = parseReference(c.input);
      const again = parseReference(ref.full);
      assert.equal(again.full, ref.full);
      assert.equal(again.shortName, false);
    }
  });
});

describe('image ids', () => {
  it('recognises full ids in both forms', () => {
    assert.equal(isImageId(HEX), true);
    assert.equal(isImageId(`sha256:${HEX}`), true);
    assert.equal(isImageId(HEX.slice(1)), false);
    assert.equal(isImageId(`${HEX}a`), false);
    assert.equal(isImageId(HEX.toUpperCase()), false);
    assert.equal(isImageId(`sha512:${HEX}`), false);
    assert.equal(isImageId('busybox'), false);
  });

  it('normalises to sha256:<hex>', () => {
    assert.equal(normaliseImageId(HEX), `sha256:${HEX}`);
    assert.equal(normaliseImageId(`sha256:${HEX}`), `sha256:${HEX}`);
    assert.throws(() => normaliseImageId('abc'), {
      name: 'InvalidArgumentError',
      message: /"abc" is not an image id/,
    });
  });

  it('accepts 6..64 hex digits as a prefix', () => {
    assert.equal(isIdPrefix('abcdef'), true);
    assert.equal(isIdPrefix('sha256:abcdef'), true);
    assert.equal(isIdPrefix(HEX), true);
    assert.equal(isIdPrefix('abcde'), false);
    assert.equal(isIdPrefix(`${HEX}0`), false);
    assert.equal(isIdPrefix('abcdeg'), false);
    assert.equal(isIdPrefix('ABCDEF'), false);
  });
});

describe('referenceFrom and withDigest', () => {
  it('normalises docker.io names like the parser', () => {
    const ref = referenceFrom({ registry: 'index.docker.io', repository: 'busybox' });
    assert.equal(ref.full, 'docker.io/library/busybox:latest');
    assert.equal(ref.shortName, false);
    assert.equal(
      referenceFrom({ registry: 'quay.io', repository: 'busybox', tag: '1' }).full,
      'quay.io/busybox:1',
    );
  });

  it('builds name@digest; the digest wins over a tag', () => {
    const ref = referenceFrom({ registry: 'localhost:5000', repository: 'a/b', tag: 'v1', digest: D256 });
    assert.equal(ref.full, `localhost:5000/a/b@${D256}`);
    assert.equal(ref.tag, undefined);
    assert.equal(ref.digest, D256);
  });

  it('refuses bad parts with the name in the message', () => {
    assert.throws(() => referenceFrom({ registry: 'quay.io', repository: 'A' }), {
      message: 'invalid image: "quay.io/A" is not a valid image name: repository names must be lowercase',
    });
    assert.throws(() => referenceFrom({ registry: 'bad host', repository: 'a' }), /registry host "bad host"/);
    assert.throws(
      () => referenceFrom({ registry: 'quay.io', repository: 'a', tag: '' }),
      /tag after ":" is empty/,
    );
    assert.throws(() => referenceFrom({ registry: 'quay.io', repository: 'a', digest: 'sha256:1' }), /64/);
  });

  it('withDigest pins a reference and keeps shortName', () => {
    const ref = withDigest(parseReference('busybox:1.36'), D256);
    assert.equal(ref.full, `docker.io/library/busybox@${D256}`);
    assert.equal(ref.tag, undefined);
    assert.equal(ref.shortName, true);
    assert.throws(() => withDigest(ref, 'nope'), {
      name: 'InvalidArgumentError',
      message: /invalid digest: "nope"/,
    });
  });

  it('isDigest accepts sha256 and sha512 only, lower-case hex', () => {
    assert.equal(isDigest(D256), true);
    assert.equal(isDigest(D512), true);
    assert.equal(isDigest(D256.toUpperCase()), false);
    assert.equal(isDigest(`sha384:${'a'.repeat(96)}`), false);
    assert.equal(isDigest(HEX), false);
  });
});
