/**
 * host-local IPAM's allocations, read so that the orphan collector can find addresses held by
 * pods that no longer exist (a crash after ADD, before crisp cached the result). host-local
 * (containernetworking-plugins 1.1) keeps one file per address under
 * `<ipam.dataDir, default /var/lib/cni/networks>/<network name>/<ip>`, holding the container id,
 * then (since 0.8) "\r\n" and the interface name; `lock` and `last_reserved_ip.<n>` are its own.
 * Only the network crisp's config selects is read, and only ids shaped like crisp's (64 hex).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readdirIfExists } from '../util/errno.js';
import { CRISP_ID_RE } from '../util/orphans.js';
import type { CniNetworkList } from './cni-conf.js';

const HOST_LOCAL_DEFAULT_DATA_DIR = '/var/lib/cni/networks';

/** The directories where host-local keeps this network's allocations (one per host-local plugin). */
export function hostLocalLeaseDirs(network: CniNetworkList): string[] {
  const dirs = new Set<string>();
  for (const plugin of network.plugins) {
    const ipam = plugin.raw.ipam;
    if (typeof ipam !== 'object' || ipam === null) continue;
    const conf = ipam as Record<string, unknown>;
    if (conf.type !== 'host-local') continue;
    const dataDir =
      typeof conf.dataDir === 'string' && conf.dataDir !== '' ? conf.dataDir : HOST_LOCAL_DEFAULT_DATA_DIR;
    dirs.add(join(dataDir, network.name));
  }
  return [...dirs];
}

export interface IpamLease {
  /** The allocation file (named by the address). */
  file: string;
  /** The container (pod sandbox) id it is held for. */
  sandboxId: string;
}

/** The allocations in `dir` held for crisp-shaped ids; none when the directory does not exist. */
export async function readLeases(dir: string): Promise<IpamLease[]> {
  const names = await readdirIfExists(dir);
  const out: IpamLease[] = [];
  for (const name of names.sort()) {
    if (name === 'lock' || name.startsWith('last_reserved_ip')) continue;
    const file = join(dir, name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue; // released meanwhile, or not a file
    }
    const id = text.split(/\r?\n/)[0]?.trim() ?? '';
    if (CRISP_ID_RE.test(id)) out.push({ file, sandboxId: id });
  }
  return out;
}
