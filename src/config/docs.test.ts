/** Keeps docs/config.md and deploy/crisp.toml in step with the schema. */
import assert from 'node:assert/strict';
import { access, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'smol-toml';
import { DEFAULT_RUNTIMES, ENV_OVERRIDES, FLAG_NAMES, defaultConfig, loadConfig } from './index.js';

/** The repository root, whether this runs from src/config or dist/src/config. */
async function repoRoot(): Promise<string> {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      await access(join(dir, 'package.json'));
      return dir;
    } catch {
      const parent = dirname(dir);
      if (parent === dir) throw new Error('package.json not found above the test file');
      dir = parent;
    }
  }
}

/** Dotted names of every leaf key; runtime tables appear as `runtimes.<name>.…` when `generic`. */
function leafKeys(value: unknown, prefix = '', generic = false): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, sub]) => {
    const name = generic && prefix === 'runtimes' ? '<name>' : key;
    return leafKeys(sub, prefix === '' ? name : `${prefix}.${name}`, generic);
  });
}

describe('deploy/crisp.toml', () => {
  it('parses to exactly the defaults', async () => {
    const file = join(await repoRoot(), 'deploy', 'crisp.toml');
    const loaded = await loadConfig({ file, env: {} });
    assert.equal(loaded.fileFound, true);
    assert.deepEqual(loaded.config, defaultConfig());
  });

  it('sets every key explicitly', async () => {
    const text = await readFile(join(await repoRoot(), 'deploy', 'crisp.toml'), 'utf8');
    assert.deepEqual(leafKeys(parse(text)).sort(), leafKeys(defaultConfig()).sort());
    assert.deepEqual(Object.keys(DEFAULT_RUNTIMES), ['runc']);
  });
});

describe('docs/config.md', () => {
  it('documents every key, environment variable and flag', async () => {
    const doc = await readFile(join(await repoRoot(), 'docs', 'config.md'), 'utf8');
    const missing = [
      ...leafKeys(defaultConfig(), '', true),
      ...leafKeys(defaultConfig()),
      ...Object.keys(ENV_OVERRIDES),
      'CRISP_CONFIG',
      ...Object.values(FLAG_NAMES),
      '--config',
    ].filter((name) => !doc.includes(`\`${name}\``) && !doc.includes(`\`${name} `));
    assert.deepEqual(missing, [], `docs/config.md does not mention: ${missing.join(', ')}`);
  });
});
