/**
 * A parser for the `WWW-Authenticate` response header (RFC 9110 §11.6.1): one or more challenges,
 * each an auth scheme followed by either a token68 or comma-separated `name=value` parameters whose
 * values may be quoted strings containing commas and backslash escapes. Registries send, e.g.
 *   Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"
 *   Basic realm="Registry Realm"
 * Several challenges may share one header (`Bearer realm="x", Basic realm="y"`); fetch also joins
 * repeated headers with ", ", which this grammar reads the same way.
 */

export interface AuthChallenge {
  /** Lowercased, e.g. "bearer", "basic". */
  scheme: string;
  /** Parameter names lowercased; values unquoted. The first occurrence of a name wins. */
  params: ReadonlyMap<string, string>;
  /** The token68 form (`Negotiate abc==`), when the challenge uses it instead of parameters. */
  token68?: string;
}

const TCHAR = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]$/;
const TOKEN68_CHAR = /^[A-Za-z0-9\-._~+/]$/;

export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  const n = header.length;
  let i = 0;

  const at = (k: number): string => header[k] ?? '';
  const isTchar = (k: number): boolean => TCHAR.test(at(k));
  const isSpace = (k: number): boolean => at(k) === ' ' || at(k) === '\t';
  const skipSpace = (): void => {
    while (i < n && isSpace(i)) i++;
  };
  const skipSeparators = (): void => {
    while (i < n && (isSpace(i) || at(i) === ',')) i++;
  };
  const skipToComma = (): void => {
    while (i < n && at(i) !== ',') i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && isTchar(i)) i++;
    return header.slice(start, i);
  };
  const readQuoted = (): string => {
    i++; // opening quote
    let value = '';
    while (i < n) {
      const c = at(i);
      if (c === '\\' && i + 1 < n) {
        value += at(i + 1);
        i += 2;
      } else if (c === '"') {
        i++;
        return value;
      } else {
        value += c;
        i++;
      }
    }
    return value; // unterminated: keep what there is
  };
  /** True when `token BWS "=" BWS (token | quoted-string)` starts at i; i is left unchanged. */
  const paramAhead = (): boolean => {
    const save = i;
    const name = readToken();
    skipSpace();
    let ok = name !== '' && at(i) === '=';
    if (ok) {
      i++;
      skipSpace();
      ok = at(i) === '"' || isTchar(i);
    }
    i = save;
    return ok;
  };

  while (i < n) {
    skipSeparators();
    if (i >= n) break;
    const scheme = readToken();
    if (scheme === '') {
      skipToComma();
      continue;
    }
    const params = new Map<string, string>();
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params };
    challenges.push(challenge);
    skipSpace();

    if (i < n && at(i) !== ',' && !paramAhead()) {
      const start = i;
      while (i < n && TOKEN68_CHAR.test(at(i))) i++;
      while (i < n && at(i) === '=') i++;
      if (i > start) challenge.token68 = header.slice(start, i);
      skipToComma();
      continue;
    }

    while (i < n) {
      skipSpace();
      if (at(i) === ',') {
        // Either the next parameter of this challenge or the start of the next challenge.
        const save = i;
        skipSeparators();
        if (i < n && paramAhead()) continue;
        i = save;
        break;
      }
      if (!paramAhead()) {
        skipToComma();
        continue;
      }
      const name = readToken().toLowerCase();
      skipSpace();
      i++; // '='
      skipSpace();
      const value = at(i) === '"' ? readQuoted() : readToken();
      if (!params.has(name)) params.set(name, value);
    }
  }
  return challenges;
}
