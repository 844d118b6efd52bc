import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseWwwAuthenticate } from './www-authenticate.js';

const asObject = (header: string): { scheme: string; params: Record<string, string>; token68?: string }[] =>
  parseWwwAuthenticate(header).map((c) => ({
    scheme: c.scheme,
    params: Object.fromEntries(c.params),
    ...(c.token68 === undefined ? {} : { token68: c.token68 }),
  }));

describe('parseWwwAuthenticate', () => {
  it('reads a Bearer challenge whose quoted values contain commas', () => {
    assert.deepEqual(
      asObject(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
      ),
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.example/token',
            service: 'registry.example',
            scope: 'repository:a/b:pull,push',
          },
        },
      ],
    );
  });

  it('reads several challenges in one header, with spaces, unquoted values and mixed case', () => {
    assert.deepEqual(
      asObject('BEARER Realm = "r1" , Service=svc,  Basic realm="Registry Realm", Negotiate'),
      [
        { scheme: 'bearer', params: { realm: 'r1', service: 'svc' } },
        { scheme: 'basic', params: { realm: 'Registry Realm' } },
        { scheme: 'negotiate', params: {} },
      ],
    );
  });

  it('unescapes quoted-pairs and keeps the first of a repeated parameter', () => {
    assert.deepEqual(asObject('Basic realm="say \\"hi\\", \\\\ok", realm="second"'), [
      { scheme: 'basic', params: { realm: 'say "hi", \\ok' } },
    ]);
  });

  it('reads the token68 form', () => {
    assert.deepEqual(asObject('Negotiate YWJj==, Basic realm=x'), [
      { scheme: 'negotiate', params: {}, token68: 'YWJj==' },
      { scheme: 'basic', params: { realm: 'x' } },
    ]);
  });

  it('survives junk: empty, unterminated quotes, stray separators', () => {
    assert.deepEqual(asObject(''), []);
    assert.deepEqual(asObject(' , ,'), []);
    assert.deepEqual(asObject('Bearer realm="unterminated'), [
      { scheme: 'bearer', params: { realm: 'unterminated' } },
    ]);
    assert.deepEqual(asObject('Bearer realm="a",,, service="b"'), [
      { scheme: 'bearer', params: { realm: 'a', service: 'b' } },
    ]);
    assert.deepEqual(asObject('Bearer realm="a", @@@, Basic'), [
      { scheme: 'bearer', params: { realm: 'a' } },
      { scheme: 'basic', params: {} },
    ]);
  });

  it('does not let a parameter named __proto__ touch a prototype', () => {
    const [c] = parseWwwAuthenticate('Bearer __proto__="x", realm="r"');
    assert.equal(c?.params.get('__proto__'), 'x');
    assert.equal(c.params.get('realm'), 'r');
  });
});
