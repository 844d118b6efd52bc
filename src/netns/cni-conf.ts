/**
 * CNI network configuration: which file is in force, what it says, and where its plugins are.
 *
 * Follows libcni and the runtimes built on it (see /work/shared/notes/cni.md §1, §3):
 *   - the config dir's `*.conflist`, `*.conf` and `*.json` files, sorted by name; the first wins;
 *   - a `.conflist` is a list; a `.conf`/`.json` holds one plugin object and is wrapped into a
 *     list with the same name and cniVersion (the wrapped bytes are what the result cache keeps);
 *   - a plugin binary is the first executable file named like its `type` in the bin dirs, in order.
 * Everything here is pure or uses fs/promises; nothing spawns processes.
 */
import { constants } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const CONFIG_SUFFIXES = ['.conflist', '.conf', '.json'] as const;

/** libcni's rule for container ids and network names. */
export const CNI_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

const VERSION_RE = /^(\d+)\.(\d+)\.(\d+)$/;

export interface CniPluginConf {
  type: string;
  /** `capabilities` entries that are `true`. */
  capabilities: string[];
  /** The plugin object exactly as configured (every key passes through to the plugin). */
  raw: Record<string, unknown>;
}

export interface CniNetworkList {
  name: string;
  cniVersion: string;
  disableCheck: boolean;
  plugins: CniPluginConf[];
  /** The list's bytes: the .conflist as read, or the JSON of the wrapped .conf. */
  bytes: Buffer;
  /** Where it came from: a config file path, or a description such as `cache file <path>`. */
  source: string;
}

/** A config that cannot be used; `problem` says what is wrong with `file`. */
export class CniConfigProblem extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`CNI network configuration ${file} is invalid: ${problem}`);
    this.name = 'CniConfigProblem';
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The config file names in `dir` CNI considers, in the order it considers them. */
export async function listConfigFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return entries
    .filter((e) => !e.isDirectory() && CONFIG_SUFFIXES.some((s) => e.name.endsWith(s)))
    .map((e) => e.name)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The network the config dir selects now: undefined when it holds no config file; throws
 * CniConfigProblem (naming the file) when the selected file is unreadable or malformed.
 */
export async function loadSelectedNetwork(dir: string): Promise<CniNetworkList | undefined> {
  const first = (await listConfigFiles(dir))[0];
  if (first === undefined) return undefined;
  const file = join(dir, first);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new CniConfigProblem(file, `cannot be read (${errnoCode(err) ?? String(err)})`);
  }
  return parseNetworkConfig(bytes, file, first.endsWith('.conflist') ? 'list' : 'single');
}

/**
 * Parses and validates a network list (`kind` 'list') or a single plugin config ('single',
 * wrapped into a list). 'auto' takes a list if the object has `plugins` and no `type` (used for
 * cached configs, which libcni may have written either way).
 */
export function parseNetworkConfig(
  bytes: Buffer,
  source: string,
  kind: 'list' | 'single' | 'auto',
): CniNetworkList {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new CniConfigProblem(
      source,
      `not valid JSON (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  if (!isRecord(parsed)) throw new CniConfigProblem(source, 'not a JSON object');
  const asList = kind === 'list' || (kind === 'auto' && 'plugins' in parsed && !('type' in parsed));
  const name = checkName(parsed, source);
  const cniVersion = checkVersion(parsed, source);
  if (!asList) {
    if ('plugins' in parsed && !('type' in parsed)) {
      throw new CniConfigProblem(
        source,
        'holds a plugin list, but .conf and .json files hold a single plugin; name it .conflist',
      );
    }
    const plugin = checkPlugin(parsed, source, 'the plugin');
    const wrapped = Buffer.from(JSON.stringify({ cniVersion, name, plugins: [parsed] }));
    return { name, cniVersion, disableCheck: false, plugins: [plugin], bytes: wrapped, source };
  }
  const plugins = parsed.plugins;
  if (!Array.isArray(plugins)) throw new CniConfigProblem(source, 'has no "plugins" list');
  if (plugins.length === 0) throw new CniConfigProblem(source, 'has an empty "plugins" list');
  const checked = plugins.map((p: unknown, i) => {
    if (!isRecord(p)) throw new CniConfigProblem(source, `plugin ${i + 1} is not a JSON object`);
    return checkPlugin(p, source, `plugin ${i + 1}`);
  });
  const disableCheck = parsed.disableCheck === true || parsed.disableCheck === 'true';
  return { name, cniVersion, disableCheck, plugins: checked, bytes, source };
}

function checkName(obj: Record<string, unknown>, source: string): string {
  const name = obj.name;
  if (typeof name !== 'string' || name === '') throw new CniConfigProblem(source, 'has no "name"');
  if (!CNI_NAME_RE.test(name)) {
    throw new CniConfigProblem(
      source,
      `network name ${JSON.stringify(name)} has invalid characters (allowed: ${CNI_NAME_RE.source})`,
    );
  }
  return name;
}

function checkVersion(obj: Record<string, unknown>, source: string): string {
  const v = obj.cniVersion;
  if (typeof v !== 'string' || v === '') throw new CniConfigProblem(source, 'has no "cniVersion"');
  if (!VERSION_RE.test(v)) {
    throw new CniConfigProblem(source, `"cniVersion" ${JSON.stringify(v)} is not a version like 1.0.0`);
  }
  return v;
}

function checkPlugin(obj: Record<string, unknown>, source: string, what: string): CniPluginConf {
  const type = obj.type;
  if (typeof type !== 'string' || type === '') throw new CniConfigProblem(source, `${what} has no "type"`);
  if (type.includes('/') || type === '.' || type === '..') {
    throw new CniConfigProblem(source, `${what} has an invalid "type" ${JSON.stringify(type)}`);
  }
  const caps = obj.capabilities;
  const capabilities = isRecord(caps) ? Object.keys(caps).filter((k) => caps[k] === true) : [];
  return { type, capabilities, raw: obj };
}

/** Is version `v` (x.y.z) at least `min`? False for anything unparsable. */
export function versionAtLeast(v: string, min: string): boolean {
  const a = VERSION_RE.exec(v);
  const b = VERSION_RE.exec(min);
  if (!a || !b) return false;
  for (let i = 1; i <= 3; i++) {
    const x = Number(a[i]);
    const y = Number(b[i]);
    if (x !== y) return x > y;
  }
  return true;
}

/** The first executable regular file `<dir>/<type>` over `binDirs`, or undefined. */
export async function findPluginBinary(
  binDirs: readonly string[],
  type: string,
): Promise<string | undefined> {
  for (const dir of binDirs) {
    const path = join(dir, type);
    try {
      if (!(await stat(path)).isFile()) continue;
      await access(path, constants.X_OK);
      return path;
    } catch {
      // absent or not executable: try the next dir
    }
  }
  return undefined;
}

export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code;
  return undefined;
}
