import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { credentialsFromAuthConfig, loadAuthFile, parseAuthFile, registryHost } from './auth.js';
import { authConfig } from './auth-fixtures.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

describe('credentialsFromAuthConfig', () => {
  it('gives nothing for no or an empty AuthConfig', () => {
    assert.equal(credentialsFromAuthConfig(undefined, 'quay.io'), undefined);
    assert.equal(credentialsFromAuthConfig(authConfig({}), 'quay.io'), undefined);
    assert.equal(credentialsFromAuthConfig(authConfig({ serverAddress: 'quay.io' }), 'quay.io'), undefined);
  });

  it('maps each field', () => {
    assert.deepEqual(credentialsFromAuthConfig(authConfig({ username: 'u', password: 'p' }), 'quay.io'), {
      kind: 'basic',
      username: 'u',
      password: 'p',
    });
    assert.deepEqual(credentialsFromAuthConfig(authConfig({ auth: b64('u:p') }), 'quay.io'), {
      kind: 'basic',
      username: 'u',
      password: 'p',
    });
    assert.deepEqual(credentialsFromAuthConfig(authConfig({ identityToken: 'refresh' }), 'quay.io'), {
      kind: 'identity-token',
      token: 'refresh',
    });
    assert.deepEqual(credentialsFromAuthConfig(authConfig({ registryToken: 'bearer' }), 'quay.io'), {
      kind: 'registry-token',
      token: 'bearer',
    });
  });

  it('applies the precedence registry_token, identity_token, username/password, auth', () => {
    const all = authConfig({
      username: 'u',
      password: 'p',
      auth: b64('a:b'),
      identityToken: 'id',
      registryToken: 'reg',
    });
    assert.deepEqual(credentialsFromAuthConfig(all, 'quay.io'), { kind: 'registry-token', token: 'reg' });
    assert.deepEqual(credentialsFromAuthConfig({ ...all, registryToken: '' }, 'quay.io'), {
      kind: 'identity-token',
      token: 'id',
    });
    assert.deepEqual(credentialsFromAuthConfig({ ...all, registryToken: '', identityToken: '' }, 'quay.io'), {
      kind: 'basic',
      username: 'u',
      password: 'p',
    });
    // auth is not even decoded when username/password are given.
    assert.deepEqual(credentialsFromAuthConfig(authConfig({ username: 'u', auth: '!!!' }), 'quay.io'), {
      kind: 'basic',
      username: 'u',
      password: '',
    });
  });

  it('ignores an AuthConfig for another server_address', () => {
    const a = authConfig({ username: 'u', password: 'p', serverAddress: 'https://quay.io/v2/' });
    assert.equal(credentialsFromAuthConfig(a, 'ghcr.io'), undefined);
    assert.equal(credentialsFromAuthConfig(a, 'quay.io:443'), undefined);
    assert.deepEqual(credentialsFromAuthConfig(a, 'quay.io'), {
      kind: 'basic',
      username: 'u',
      password: 'p',
    });
    assert.deepEqual(credentialsFromAuthConfig({ ...a, serverAddress: 'QUAY.IO' }, 'quay.io')?.kind, 'basic');
    assert.deepEqual(
      credentialsFromAuthConfig({ ...a, serverAddress: 'localhost:5000' }, 'localhost:5000')?.kind,
      'basic',
    );
  });

  it('treats the Docker Hub hosts as one registry', () => {
    for (const server of [
      'https://index.docker.io/v1/',
      'registry-1.docker.io',
      'docker.io',
      'index.docker.io',
    ]) {
      const a = authConfig({ username: 'u', password: 'p', serverAddress: server });
      assert.equal(credentialsFromAuthConfig(a, 'docker.io')?.kind, 'basic', server);
      assert.equal(credentialsFromAuthConfig(a, 'registry-1.docker.io')?.kind, 'basic', server);
    }
  });

  it('decodes auth: first colon splits, trailing NULs trimmed, padding optional', () => {
    const cases: [string, string, string][] = [
      [b64('user:pa:ss'), 'user', 'pa:ss'],
      [b64('user:pass\0\0'), 'user', 'pass'],
      [b64('user:'), 'user', ''],
      [b64(':pass'), '', 'pass'],
      [b64('üser:pässwörd'), 'üser', 'pässwörd'],
      [b64('u:pw').replace(/=+$/, ''), 'u', 'pw'],
    ];
    for (const [auth, username, password] of cases) {
      assert.deepEqual(credentialsFromAuthConfig(authConfig({ auth }), 'quay.io'), {
        kind: 'basic',
        username,
        password,
      });
    }
  });

  it('refuses bad auth without echoing it', () => {
    const cases: [string, RegExp][] = [
      ['not base64!', /not valid base64/],
      ['dXNlcg=', /not valid base64/],
      ['a', /not valid base64/],
      ['dXNl cjpw', /not valid base64/],
      [b64('no-colon-here'), /no ":"/],
      [Buffer.from([0xff, 0xfe, 0x3a, 0x41]).toString('base64'), /UTF-8/],
    ];
    for (const [auth, why] of cases) {
      assert.throws(
        () => credentialsFromAuthConfig(authConfig({ auth }), 'quay.io'),
        (err: unknown) => {
          assert.ok(err instanceof InvalidArgumentError);
          assert.equal(err.field, 'auth');
          assert.match(err.message, /^invalid auth: /);
          assert.match(err.message, why);
          if (auth.length > 3) assert.ok(!err.message.includes(auth), err.message);
          return true;
        },
      );
    }
  });
});

describe('registryHost', () => {
  it('strips scheme and path, lower-cases, folds Docker Hub', () => {
    assert.equal(registryHost('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(registryHost('http://Registry.Example.test:5000/path'), 'registry.example.test:5000');
    assert.equal(registryHost('quay.io'), 'quay.io');
    assert.equal(registryHost('registry-1.docker.io'), 'docker.io');
  });
});

describe('auth file', () => {
  const file = parseAuthFile(
    JSON.stringify({
      auths: {
        'quay.io': { auth: b64('reg:1') },
        'quay.io/ns': { auth: b64('ns:2') },
        'https://quay.io/ns/app': { auth: b64('repo:3') },
        'quay.io/ns/app/sub': { auth: b64('sub:4') },
        'https://index.docker.io/v1/': { auth: b64('hub:5') },
        'docker.io/library': { auth: b64('lib:6') },
        'ghcr.io': { auth: b64('<token>:x'), identitytoken: 'refresh-7' },
        'localhost:5000': { auth: b64('local:8') },
        'empty.test': {},
        'Upper.Test': { auth: b64('upper:9') },
      },
      credsStore: 'desktop',
    }),
    '/etc/crisp/auth.json',
  );
  const user = (registry: string, repository: string): string | undefined => {
    const c = file.lookup(registry, repository);
    if (c === undefined) return undefined;
    return c.kind === 'basic' ? c.username : c.kind;
  };

  it('prefers the most specific key: repository, then namespaces, then registry', () => {
    assert.equal(user('quay.io', 'ns/app/sub/deeper'), 'sub');
    assert.equal(user('quay.io', 'ns/app/sub'), 'sub');
    assert.equal(user('quay.io', 'ns/app'), 'repo');
    assert.equal(user('quay.io', 'ns/other'), 'ns');
    assert.equal(user('quay.io', 'ns'), 'ns');
    assert.equal(user('quay.io', 'nsx/app'), 'reg');
    assert.equal(user('quay.io', 'other/app'), 'reg');
  });

  it('folds docker.io keys, including the legacy https://index.docker.io/v1/', () => {
    assert.equal(user('docker.io', 'library/busybox'), 'lib');
    assert.equal(user('docker.io', 'someone/app'), 'hub');
    assert.equal(user('registry-1.docker.io', 'someone/app'), 'hub');
  });

  it('gives identity tokens, ports, case-insensitive hosts, and nothing for unknown or empty entries', () => {
    assert.deepEqual(file.lookup('ghcr.io', 'o/r'), { kind: 'identity-token', token: 'refresh-7' });
    assert.equal(user('localhost:5000', 'x'), 'local');
    assert.equal(user('localhost', 'x'), undefined);
    assert.equal(user('upper.test', 'x'), 'upper');
    assert.equal(user('empty.test', 'x'), undefined);
    assert.equal(user('unknown.test', 'x'), undefined);
    assert.equal(file.exists, true);
    assert.equal(file.path, '/etc/crisp/auth.json');
  });

  it('accepts a file without auths', () => {
    assert.equal(parseAuthFile('{}', '/f').lookup('quay.io', 'x'), undefined);
  });

  const malformed: [string, string, RegExp][] = [
    ['not JSON', '{', /not valid JSON/],
    ['an array', '[]', /expected a JSON object/],
    ['auths not an object', '{"auths": []}', /"auths" must be an object/],
    ['entry not an object', '{"auths": {"quay.io": "x"}}', /auths\["quay\.io"\] must be an object/],
    [
      'auth not a string',
      '{"auths": {"quay.io": {"auth": 1}}}',
      /auths\["quay\.io"\]\.auth must be a string/,
    ],
    [
      'auth not base64',
      '{"auths": {"quay.io": {"auth": "%%%"}}}',
      /auths\["quay\.io"\]\.auth: not valid base64/,
    ],
    ['auth without colon', `{"auths": {"quay.io": {"auth": "${b64('x')}"}}}`, /no ":"/],
    [
      'identitytoken not a string',
      '{"auths": {"quay.io": {"identitytoken": true}}}',
      /identitytoken must be a string/,
    ],
    ['empty key', '{"auths": {"https://": {"auth": ""}}}', /names no registry/],
  ];
  for (const [name, text, why] of malformed) {
    it(`refuses a file with ${name}, naming it`, () => {
      assert.throws(
        () => parseAuthFile(text, '/etc/crisp/auth.json'),
        (err: unknown) => {
          assert.ok(err instanceof FailedPreconditionError);
          assert.match(err.message, /^invalid auth file \/etc\/crisp\/auth\.json: /);
          assert.match(err.message, why);
          return true;
        },
      );
    });
  }
});

describe('loadAuthFile', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'crisp-auth-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("finds nothing for '' and for a missing file", async () => {
    const none = await loadAuthFile('');
    assert.equal(none.exists, false);
    assert.equal(none.lookup('quay.io', 'x'), undefined);
    const missing = path.join(dir, 'missing.json');
    const gone = await loadAuthFile(missing);
    assert.equal(gone.exists, false);
    assert.equal(gone.path, missing);
    assert.equal(gone.lookup('quay.io', 'x'), undefined);
  });

  it('reads a file', async () => {
    const f = path.join(dir, 'auth.json');
    await writeFile(f, JSON.stringify({ auths: { 'quay.io': { auth: b64('u:p') } } }));
    const auth = await loadAuthFile(f);
    assert.deepEqual(auth.lookup('quay.io', 'a/b'), { kind: 'basic', username: 'u', password: 'p' });
  });

  it('refuses a malformed file, naming it', async () => {
    const f = path.join(dir, 'bad.json');
    await writeFile(f, '{"auths": ');
    await assert.rejects(loadAuthFile(f), (err: unknown) => {
      assert.ok(err instanceof FailedPreconditionError);
      assert.ok(err.message.includes(f), err.message);
      return true;
    });
    await assert.rejects(loadAuthFile(dir), { name: 'FailedPreconditionError', message: /is a directory/ });
  });
});
