/**
 * Finding a pod or container by its full id or, as crictl allows, a unique prefix of at least
 * three hex digits. An ambiguous prefix is an InvalidArgumentError naming `field`.
 */
import { InvalidArgumentError } from '../errors.js';

export function byIdOrPrefix<T extends { config: { id: string } }>(
  idOrPrefix: string,
  exact: T | undefined,
  all: () => readonly T[],
  field: string,
  noun: string,
): T | undefined {
  if (exact) return exact;
  if (!/^[0-9a-f]{3,63}$/.test(idOrPrefix)) return undefined;
  const matches = all().filter((x) => x.config.id.startsWith(idOrPrefix));
  if (matches.length > 1) {
    throw new InvalidArgumentError(field, `prefix "${idOrPrefix}" matches ${matches.length} ${noun}`);
  }
  return matches[0];
}
