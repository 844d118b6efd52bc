/**
 * The CNI result cache, in libcni's on-disk format (notes/cni.md §7) so other CNI tooling can
 * read it: one file `<dir>/<networkName>-<containerId>-<ifName>` (dir 0700, file 0600) holding
 *   {"kind":"cniCacheV1","containerId","config":<base64 of the list bytes>,"ifName","networkName",
 *    "netns","cniArgs":[["K","V"],...],"capabilityArgs":{...},"result":{...}}
 * plus `crispConfigFile` (the config file ADD used; libcni ignores unknown keys).
 * Written after a successful ADD of the whole list, atomically and durably (temp file, fsync,
 * rename, fsync of the dir); removed after a successful DEL. fs/promises only.
 */
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../util/atomic-file.js';
import { errnoCode, isRecord } from './cni-conf.js';

export const CACHE_KIND = 'cniCacheV1';

export interface CniCacheEntry {
  kind: typeof CACHE_KIND;
  containerId: string;
  /** base64 of the exact network list bytes ADD used. */
  config: string;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs: [string, string][];
  capabilityArgs: Record<string, unknown>;
  result: Record<string, unknown>;
  crispConfigFile?: string;
}

export interface CachedFile {
  /** Absolute path of the cache file. */
  path: string;
  entry: CniCacheEntry;
}

function cacheFileName(networkName: string, containerId: string, ifName: string): string {
  return `${networkName}-${containerId}-${ifName}`;
}

/** Writes (or replaces) the entry's file atomically and durably; returns its path. */
export async function writeCacheEntry(dir: string, entry: CniCacheEntry): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, cacheFileName(entry.networkName, entry.containerId, entry.ifName));
  // The temp file beside it is `.tmp-<name>-<random>`: scanCache skips it (a leading dot).
  await writeFileAtomic(path, JSON.stringify(entry), 0o600);
  return path;
}

/** Removes a cache file; a missing file is fine. */
export async function removeCacheFile(path: string, dir: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  await fsyncDir(dir);
}

/** Validates a parsed cache file; undefined when it is not a usable libcni cache entry. */
function toCacheEntry(value: unknown): CniCacheEntry | undefined {
  if (!isRecord(value) || value.kind !== CACHE_KIND) return undefined;
  const { containerId, config, ifName, networkName, netns, cniArgs, capabilityArgs, result } = value;
  if (typeof containerId !== 'string' || typeof ifName !== 'string' || typeof networkName !== 'string')
    return undefined;
  if (typeof config !== 'string' || config === '') return undefined;
  const args: [string, string][] = [];
  if (Array.isArray(cniArgs)) {
    for (const pair of cniArgs) {
      if (!Array.isArray(pair) || pair.length !== 2) return undefined;
      const [k, v] = pair as unknown[];
      if (typeof k !== 'string' || typeof v !== 'string') return undefined;
      args.push([k, v]);
    }
  }
  const entry: CniCacheEntry = {
    kind: CACHE_KIND,
    containerId,
    config,
    ifName,
    networkName,
    cniArgs: args,
    capabilityArgs: isRecord(capabilityArgs) ? capabilityArgs : {},
    result: isRecord(result) ? result : {},
  };
  if (typeof netns === 'string') entry.netns = netns;
  if (typeof value.crispConfigFile === 'string') entry.crispConfigFile = value.crispConfigFile;
  return entry;
}

export interface CacheScan {
  files: CachedFile[];
  /** Files that look like cache files but cannot be read or parsed (with why). */
  unreadable: { path: string; problem: string }[];
}

/**
 * The cache files in `dir`, optionally only those for one container id and interface, sorted
 * by file name. Temp files are skipped. A file whose name does not match its content (e.g. a
 * `-<id>-<if>` suffix shared by another container) is not counted as that container's.
 */
export async function scanCache(
  dir: string,
  filter: { containerId?: string; ifName?: string } = {},
): Promise<CacheScan> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { files: [], unreadable: [] };
    throw err;
  }
  const suffix =
    filter.containerId !== undefined && filter.ifName !== undefined
      ? `-${filter.containerId}-${filter.ifName}`
      : undefined;
  const scan: CacheScan = { files: [], unreadable: [] };
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue;
    if (suffix !== undefined && !name.endsWith(suffix)) continue;
    const path = join(dir, name);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue; // removed meanwhile
      if (errnoCode(err) === 'EISDIR') continue;
      scan.unreadable.push({ path, problem: `cannot be read (${errnoCode(err) ?? String(err)})` });
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      scan.unreadable.push({ path, problem: 'not valid JSON' });
      continue;
    }
    const entry = toCacheEntry(parsed);
    if (entry === undefined) {
      scan.unreadable.push({ path, problem: `not a ${CACHE_KIND} cache entry` });
      continue;
    }
    if (cacheFileName(entry.networkName, entry.containerId, entry.ifName) !== name) continue;
    if (filter.containerId !== undefined && entry.containerId !== filter.containerId) continue;
    if (filter.ifName !== undefined && entry.ifName !== filter.ifName) continue;
    scan.files.push({ path, entry });
  }
  return scan;
}
