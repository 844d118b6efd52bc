import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FailedPreconditionError, PermissionDeniedError } from '../errors.js';
import { parseReference } from './reference.js';
import {
  defaultRegistriesPolicy,
  loadRegistriesPolicy,
  parseRegistriesConf,
  type RegistriesPolicy,
} from './registries.js';
import type { PullSource } from './types.js';

const FILE = '/etc/containers/registries.conf';
const D256 = `sha256:${'0123456789abcdef'.repeat(4)}`;

function conf(text: string): RegistriesPolicy {
  return parseRegistriesConf(text, FILE);
}

function src(endpoint: string, repository: string, extra: Partial<PullSource> = {}): PullSource {
  return { endpoint, repository, insecure: false, mirror: false, ...extra };
}

function sourcesOf(policy: RegistriesPolicy, image: string): PullSource[] {
  return policy.sources(parseReference(image));
}

function fulls(policy: RegistriesPolicy, image: string): string[] {
  return policy.candidates(parseReference(image)).map((r) => r.full);
}

/** Asserts a FailedPreconditionError naming the file and (when given) the key. */
function assertInvalid(text: string, key: string | undefined, why: RegExp): void {
  assert.throws(
    () => conf(text),
    (err: unknown) => {
      assert.ok(err instanceof FailedPreconditionError, String(err));
      assert.ok(err.message.includes(FILE), err.message);
      if (key !== undefined) assert.ok(err.message.includes(`key "${key}"`), err.message);
      assert.match(err.message, why);
      return true;
    },
  );
}

describe('default policy', () => {
  const policy = defaultRegistriesPolicy();

  it('resolves short names on docker.io only', () => {
    assert.deepEqual(fulls(policy, 'busybox'), ['docker.io/library/busybox:latest']);
    assert.deepEqual(fulls(policy, 'foo/bar:1'), ['docker.io/foo/bar:1']);
    assert.equal(policy.file, undefined);
  });

  it('keeps a qualified reference as it is', () => {
    const ref = parseReference('quay.io/a/b:1');
    assert.deepEqual(policy.candidates(ref), [ref]);
  });

  it('pulls from the registry itself over https; docker.io from registry-1.docker.io', () => {
    assert.deepEqual(sourcesOf(policy, 'busybox'), [src('registry-1.docker.io', 'library/busybox')]);
    assert.deepEqual(sourcesOf(policy, 'localhost:5000/x'), [src('localhost:5000', 'x')]);
  });
});

describe('unqualified-search-registries', () => {
  it('gives one candidate per registry, in order, with docker.io rules on docker.io only', () => {
    const policy = conf(
      `unqualified-search-registries = ["quay.io", "docker.io", "registry.example.test:5000/"]`,
    );
    assert.deepEqual(fulls(policy, 'busybox:1'), [
      'quay.io/busybox:1',
      'docker.io/library/busybox:1',
      'registry.example.test:5000/busybox:1',
    ]);
    assert.deepEqual(fulls(policy, 'ns/app'), [
      'quay.io/ns/app:latest',
      'docker.io/ns/app:latest',
      'registry.example.test:5000/ns/app:latest',
    ]);
    assert.deepEqual(fulls(policy, `app@${D256}`), [
      `quay.io/app@${D256}`,
      `docker.io/library/app@${D256}`,
      `registry.example.test:5000/app@${D256}`,
    ]);
    for (const c of policy.candidates(parseReference('busybox'))) assert.equal(c.shortName, true);
  });

  it('leaves qualified references alone', () => {
    const policy = conf(`unqualified-search-registries = ["quay.io"]`);
    assert.deepEqual(fulls(policy, 'docker.io/busybox'), ['docker.io/library/busybox:latest']);
    assert.deepEqual(fulls(policy, 'localhost/x'), ['localhost/x:latest']);
  });

  it('falls back to docker.io when none are configured; drops duplicates', () => {
    assert.deepEqual(fulls(conf(''), 'busybox'), ['docker.io/library/busybox:latest']);
    assert.deepEqual(fulls(conf('unqualified-search-registries = []'), 'busybox'), [
      'docker.io/library/busybox:latest',
    ]);
    const dup = conf(`unqualified-search-registries = ["docker.io", "index.docker.io", "quay.io"]`);
    assert.deepEqual(fulls(dup, 'busybox'), ['docker.io/library/busybox:latest', 'quay.io/busybox:latest']);
  });

  it('refuses entries that are not a host[:port]', () => {
    assertInvalid(
      `unqualified-search-registries = ["quay.io/ns"]`,
      'unqualified-search-registries[0]',
      /host\[:port\]/,
    );
    assertInvalid(
      `unqualified-search-registries = ["https://quay.io"]`,
      'unqualified-search-registries[0]',
      /scheme/,
    );
    assertInvalid(
      `unqualified-search-registries = ["quay.io", 1]`,
      'unqualified-search-registries[1]',
      /string/,
    );
    assertInvalid(`unqualified-search-registries = "quay.io"`, 'unqualified-search-registries', /array/);
  });
});

describe('[[registry]] matching and rewriting', () => {
  const policy = conf(`
[[registry]]
prefix = "example.test"
location = "example.test"
insecure = true

[[registry]]
prefix = "example.test/foo"
location = "internal.test:5000/bar"

[[registry]]
prefix = "example.test/foo/special"
location = "special.test/s"

`);

  it('uses the longest matching prefix and rewrites it to location', () => {
    assert.deepEqual(sourcesOf(policy, 'example.test/foo/img:latest'), [
      src('internal.test:5000', 'bar/img'),
    ]);
    assert.deepEqual(sourcesOf(policy, 'example.test/foo/special:1'), [src('special.test', 's')]);
    assert.deepEqual(sourcesOf(policy, 'example.test/foo/special/sub:1'), [src('special.test', 's/sub')]);
    assert.deepEqual(sourcesOf(policy, 'example.test/foo'), [src('internal.test:5000', 'bar')]);
    assert.deepEqual(sourcesOf(policy, 'example.test/other/img'), [
      src('example.test', 'other/img', { insecure: true }),
    ]);
  });

  it('matches whole path components and hosts only', () => {
    // "example.test/foobar" is not under the "example.test/foo" namespace.
    assert.deepEqual(sourcesOf(policy, 'example.test/foobar'), [
      src('example.test', 'foobar', { insecure: true }),
    ]);
    // A host prefix does not cover other ports or longer host names.
    assert.deepEqual(sourcesOf(policy, 'example.test:5000/foo/x'), [src('example.test:5000', 'foo/x')]);
    assert.deepEqual(sourcesOf(policy, 'example.testing/x'), [src('example.testing', 'x')]);
    // Hosts compare without regard to case.
    assert.deepEqual(sourcesOf(policy, 'EXAMPLE.test/foo/x'), [src('internal.test:5000', 'bar/x')]);
  });

  it('matches wildcard subdomains at any depth and port, keeping the reference without location', () => {
    const wild = conf(`
[[registry]]
prefix = "*.wild.test"
insecure = true

[[registry]]
prefix = "a.wild.test"
location = "a-mirror.test/a"

[[registry]]
prefix = "*.deep.wild.test"
location = "deep.test"
`);
    assert.deepEqual(sourcesOf(wild, 'x.wild.test/r'), [src('x.wild.test', 'r', { insecure: true })]);
    assert.deepEqual(sourcesOf(wild, 'y.x.wild.test:5000/r:1'), [
      src('y.x.wild.test:5000', 'r', { insecure: true }),
    ]);
    assert.deepEqual(sourcesOf(wild, 'wild.test/r'), [src('wild.test', 'r')]);
    assert.deepEqual(sourcesOf(wild, 'notwild.test/r'), [src('notwild.test', 'r')]);
    // An exact host of the same length beats the wildcard; a longer wildcard beats a shorter one.
    assert.deepEqual(sourcesOf(wild, 'a.wild.test/r'), [src('a-mirror.test', 'a/r')]);
    assert.deepEqual(sourcesOf(wild, 'z.deep.wild.test/ns/r'), [src('deep.test', 'ns/r')]);
  });

  it('matches prefixes with a tag or digest only for that tag or digest', () => {
    const pinned = conf(`
[[registry]]
prefix = "docker.io/library/alpine:3.18"
location = "pinned.test/alpine"

[[registry]]
prefix = "quay.io/a/b@${D256}"
location = "pinned.test/b"

[[registry]]
prefix = "docker.io/library/alpine"
location = "alpine.test/alpine"
`);
    assert.deepEqual(sourcesOf(pinned, 'alpine:3.18'), [src('pinned.test', 'alpine')]);
    assert.deepEqual(sourcesOf(pinned, 'alpine:3.19'), [src('alpine.test', 'alpine')]);
    assert.deepEqual(sourcesOf(pinned, `alpine@${D256}`), [src('alpine.test', 'alpine')]);
    assert.deepEqual(sourcesOf(pinned, `quay.io/a/b@${D256}`), [src('pinned.test', 'b')]);
    assert.deepEqual(sourcesOf(pinned, 'quay.io/a/b:1'), [src('quay.io', 'a/b')]);
  });

  it('needs docker.io prefixes to spell out library/, and maps docker.io locations to the API host', () => {
    const hub = conf(`
[[registry]]
prefix = "docker.io/alpine"
location = "elsewhere.test/x"

[[registry]]
prefix = "example.test/hub"
location = "docker.io"
`);
    assert.deepEqual(sourcesOf(hub, 'alpine'), [src('registry-1.docker.io', 'library/alpine')]);
    assert.deepEqual(sourcesOf(hub, 'docker.io/alpine/git'), [src('elsewhere.test', 'x/git')]);
    assert.deepEqual(sourcesOf(hub, 'example.test/hub/busybox'), [
      src('registry-1.docker.io', 'library/busybox'),
    ]);
    assert.deepEqual(sourcesOf(hub, 'example.test/hub/u/app'), [src('registry-1.docker.io', 'u/app')]);
  });

  it('defaults prefix to location', () => {
    const p = conf(`
[[registry]]
location = "registry.example.test:5000/ns"
insecure = true
`);
    assert.deepEqual(sourcesOf(p, 'registry.example.test:5000/ns/app'), [
      src('registry.example.test:5000', 'ns/app', { insecure: true }),
    ]);
    assert.deepEqual(sourcesOf(p, 'registry.example.test:5000/other'), [
      src('registry.example.test:5000', 'other'),
    ]);
  });

  it('fails clearly when a rewrite leaves no repository', () => {
    const p = conf(`
[[registry]]
prefix = "example.test/app"
location = "other.test"
`);
    assert.deepEqual(sourcesOf(p, 'example.test/app/x'), [src('other.test', 'x')]);
    assert.throws(() => sourcesOf(p, 'example.test/app'), {
      name: 'FailedPreconditionError',
      message: /registry\[0\].*"example\.test\/app:latest".*names no repository/,
    });
  });
});

describe('mirrors', () => {
  const policy = conf(`
[[registry]]
prefix = "example.test/foo"
location = "internal.test/bar"

[[registry.mirror]]
location = "mirror-0.test/mirror-for-foo"

[[registry.mirror]]
location = "mirror-1.test:5000/mirrors/foo"
insecure = true

[[registry.mirror]]
location = "digests.test"
pull-from-mirror = "digest-only"

[[registry.mirror]]
location = "tags.test/t"
pull-from-mirror = "tag-only"

[[registry.mirror]]
location = "all.test/a"
pull-from-mirror = "all"
`);

  it('lists the mirrors in order, then the primary location (tag pull)', () => {
    assert.deepEqual(sourcesOf(policy, 'example.test/foo/image:latest'), [
      src('mirror-0.test', 'mirror-for-foo/image', { mirror: true }),
      src('mirror-1.test:5000', 'mirrors/foo/image', { mirror: true, insecure: true }),
      src('tags.test', 't/image', { mirror: true }),
      src('all.test', 'a/image', { mirror: true }),
      src('internal.test', 'bar/image'),
    ]);
  });

  it('honours pull-from-mirror for a digest pull', () => {
    assert.deepEqual(sourcesOf(policy, `example.test/foo/image@${D256}`), [
      src('mirror-0.test', 'mirror-for-foo/image', { mirror: true }),
      src('mirror-1.test:5000', 'mirrors/foo/image', { mirror: true, insecure: true }),
      src('digests.test', 'image', { mirror: true }),
      src('all.test', 'a/image', { mirror: true }),
      src('internal.test', 'bar/image'),
    ]);
  });

  it('uses mirrors only for digests with mirror-by-digest-only', () => {
    const p = conf(`
[[registry]]
location = "docker.io"
mirror-by-digest-only = true

[[registry.mirror]]
location = "mirror.gcr.test"
`);
    assert.deepEqual(sourcesOf(p, 'busybox'), [src('registry-1.docker.io', 'library/busybox')]);
    assert.deepEqual(sourcesOf(p, `busybox@${D256}`), [
      src('mirror.gcr.test', 'library/busybox', { mirror: true }),
      src('registry-1.docker.io', 'library/busybox'),
    ]);
  });

  it('applies mirrors of a wildcard prefix to the whole repository', () => {
    const p = conf(`
[[registry]]
prefix = "*.corp.test"

[[registry.mirror]]
location = "cache.test/corp"
`);
    assert.deepEqual(sourcesOf(p, 'r1.corp.test/team/app:1'), [
      src('cache.test', 'corp/team/app', { mirror: true }),
      src('r1.corp.test', 'team/app'),
    ]);
  });
});

describe('blocked', () => {
  const policy = conf(`
[[registry]]
location = "blocked.test"
blocked = true

[[registry]]
prefix = "blocked.test/allowed"
location = "blocked.test/allowed"
`);

  it('refuses a blocked registry, naming the image and the file', () => {
    assert.throws(
      () => sourcesOf(policy, 'blocked.test/evil:1'),
      (err: unknown) => {
        assert.ok(err instanceof PermissionDeniedError);
        assert.match(
          err.message,
          /image "blocked\.test\/evil:1" is blocked by \/etc\/containers\/registries\.conf/,
        );
        return true;
      },
    );
  });

  it('lets a longer, unblocked prefix through', () => {
    assert.deepEqual(sourcesOf(policy, 'blocked.test/allowed/x'), [src('blocked.test', 'allowed/x')]);
  });
});

describe('accepted and ignored settings', () => {
  it('accepts short-name-mode, aliases and credential helpers', () => {
    const p = conf(`
unqualified-search-registries = ["quay.io"]
short-name-mode = "enforcing"
credential-helpers = ["containers-auth.json"]

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
`);
    assert.deepEqual(fulls(p, 'fedora'), ['quay.io/fedora:latest']);
  });
});

describe('invalid files', () => {
  it('refuses version 1 syntax', () => {
    assertInvalid(
      `
[registries.search]
registries = ["quay.io"]

[registries.insecure]
registries = []
`,
      'registries',
      /version 1 syntax .* is not supported/,
    );
  });

  it('reports TOML syntax errors with file, line and column', () => {
    assertInvalid(
      'unqualified-search-registries = [\n',
      undefined,
      /registries\.conf:\d+:\d+: TOML syntax error/,
    );
  });

  const cases: { name: string; text: string; key: string; why: RegExp }[] = [
    {
      name: 'unknown top-level key',
      text: 'unqualified-search = []',
      key: 'unqualified-search',
      why: /unknown key/,
    },
    {
      name: 'unknown registry key',
      text: '[[registry]]\nlocation = "a.test"\nmirror-by-digest = true',
      key: 'registry[0].mirror-by-digest',
      why: /unknown key/,
    },
    {
      name: 'pull-from-mirror on a registry',
      text: '[[registry]]\nlocation = "a.test"\npull-from-mirror = "all"',
      key: 'registry[0].pull-from-mirror',
      why: /only in a \[\[registry\.mirror\]\]/,
    },
    {
      name: 'registry as a string',
      text: 'registry = "a.test"',
      key: 'registry',
      why: /array of tables/,
    },
    {
      name: 'no prefix nor location',
      text: '[[registry]]\ninsecure = true',
      key: 'registry[0]',
      why: /set location/,
    },
    {
      name: 'prefix without location',
      text: '[[registry]]\nprefix = "a.test/ns"',
      key: 'registry[0].location',
      why: /required unless prefix is a wildcard/,
    },
    {
      name: 'location with a scheme',
      text: '[[registry]]\nlocation = "https://a.test"',
      key: 'registry[0].location',
      why: /URL schemes are not supported/,
    },
    {
      name: 'location with a tag',
      text: '[[registry]]\nprefix = "a.test"\nlocation = "b.test/x:1"',
      key: 'registry[0].location',
      why: /not a valid repository path/,
    },
    {
      name: 'upper-case prefix path',
      text: '[[registry]]\nprefix = "a.test/NS"\nlocation = "b.test"',
      key: 'registry[0].prefix',
      why: /not a valid repository path/,
    },
    {
      name: 'bad wildcard',
      text: '[[registry]]\nprefix = "*.a.test/ns"\nlocation = "b.test"',
      key: 'registry[0].prefix',
      why: /wildcard/,
    },
    {
      name: 'wildcard with a port',
      text: '[[registry]]\nprefix = "*.a.test:5000"',
      key: 'registry[0].prefix',
      why: /wildcard/,
    },
    {
      name: 'insecure as a string',
      text: '[[registry]]\nlocation = "a.test"\ninsecure = "yes"',
      key: 'registry[0].insecure',
      why: /expected true or false, got the string "yes"/,
    },
    {
      name: 'bad pull-from-mirror',
      text: '[[registry]]\nlocation = "a.test"\n[[registry.mirror]]\nlocation = "m.test"\npull-from-mirror = "sometimes"',
      key: 'registry[0].mirror[0].pull-from-mirror',
      why: /must be one of all, digest-only, tag-only/,
    },
    {
      name: 'pull-from-mirror with mirror-by-digest-only',
      text: '[[registry]]\nlocation = "a.test"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.test"\npull-from-mirror = "tag-only"',
      key: 'registry[0].mirror[0].pull-from-mirror',
      why: /cannot be combined with mirror-by-digest-only/,
    },
    {
      name: 'mirror without location',
      text: '[[registry]]\nlocation = "a.test"\n[[registry.mirror]]\ninsecure = true',
      key: 'registry[0].mirror[0].location',
      why: /is required/,
    },
    {
      name: 'unknown mirror key',
      text: '[[registry]]\nlocation = "a.test"\n[[registry.mirror]]\nlocation = "m.test"\nblocked = true',
      key: 'registry[0].mirror[0].blocked',
      why: /unknown key/,
    },
    {
      name: 'duplicate prefix',
      text: '[[registry]]\nlocation = "a.test"\n[[registry]]\nprefix = "A.test"\nlocation = "b.test"',
      key: 'registry[1].prefix',
      why: /already used by registry\[0\]/,
    },
    {
      name: 'bad short-name-mode',
      text: 'short-name-mode = "strict"',
      key: 'short-name-mode',
      why: /must be one of enforcing, permissive, disabled/,
    },
    { name: 'aliases not a table', text: 'aliases = "x"', key: 'aliases', why: /expected a table/ },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}`, () => {
      assertInvalid(c.text, c.key, c.why);
    });
  }
});

describe('loadRegistriesPolicy', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'crisp-registries-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the default policy for a missing file', async () => {
    const policy = await loadRegistriesPolicy(path.join(dir, 'missing.conf'));
    assert.equal(policy.file, undefined);
    assert.deepEqual(fulls(policy, 'busybox'), ['docker.io/library/busybox:latest']);
  });

  it('reads a file and names it in errors', async () => {
    const good = path.join(dir, 'good.conf');
    await writeFile(good, '\uFEFFunqualified-search-registries = ["quay.io"]\n');
    const policy = await loadRegistriesPolicy(good);
    assert.equal(policy.file, good);
    assert.deepEqual(fulls(policy, 'x'), ['quay.io/x:latest']);

    const bad = path.join(dir, 'bad.conf');
    await writeFile(bad, '[registries.search]\nregistries = ["quay.io"]\n');
    await assert.rejects(loadRegistriesPolicy(bad), (err: unknown) => {
      assert.ok(err instanceof FailedPreconditionError);
      assert.ok(err.message.includes(bad), err.message);
      assert.match(err.message, /version 1/);
      return true;
    });
  });

  it('refuses a directory', async () => {
    const sub = path.join(dir, 'conf.d');
    await mkdir(sub);
    await assert.rejects(loadRegistriesPolicy(sub), {
      name: 'FailedPreconditionError',
      message: /is a directory/,
    });
  });
});
