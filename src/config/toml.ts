/**
 * The effective configuration as TOML: what `crisp config` prints and what the daemon's config digest
 * is computed over. Keys come in a fixed order (the schema's, with top-level scalars before tables and
 * extra runtimes sorted by name), so equal configs give byte-identical text.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'smol-toml';
import { defaultConfig, type CrispConfig } from './schema.js';

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Copies `value` with object keys in the template's order, then any other keys sorted. */
function ordered(value: unknown, template: unknown): unknown {
  if (!isTable(value)) return value;
  const known = isTable(template) ? Object.keys(template) : [];
  const keys = [
    ...known.filter((k) => Object.hasOwn(value, k)),
    ...Object.keys(value)
      .filter((k) => !known.includes(k))
      .sort(),
  ];
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    // Every runtime table shares the shape of the default one.
    const sub = isTable(template) ? (template[key] ?? template[known[0] ?? '']) : undefined;
    out[key] = ordered(value[key], sub);
  }
  return out;
}

export function configToToml(config: CrispConfig): string {
  const canonical = ordered(config, defaultConfig());
  const text = stringify(canonical);
  return text.endsWith('\n') ? text : `${text}\n`;
}

/** sha256 (hex) of the canonical TOML: changes exactly when the effective configuration does. */
export function configDigest(config: CrispConfig): string {
  return createHash('sha256').update(configToToml(config)).digest('hex');
}
