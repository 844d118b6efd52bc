/**
 * Reading the pod's addresses out of a CNI result of any version (notes/cni.md §6):
 *   - 1.0.0: `ips[]` entries whose `interface` index points at the sandbox interface
 *     (`interfaces[i].sandbox` set; the one named like CNI_IFNAME preferred);
 *   - 0.3.x/0.4.0: the same shape with `version: "4"|"6"` on each entry;
 *   - 0.1.0/0.2.0: `ip4` / `ip6` objects holding `ip` (CIDR) and `gateway`.
 * A result whose entries name no interface (an IPAM-only result) yields all its addresses.
 * Addresses come back IPv4 first, otherwise in result order. Pure; never throws.
 */
import { isIP } from 'node:net';
import { isRecord } from './cni-conf.js';

export interface CniIp {
  /** CIDR, e.g. 10.85.0.5/16. */
  address: string;
  /** The address alone, e.g. 10.85.0.5. */
  ip: string;
  gateway?: string;
  family: 4 | 6;
}

export function parseResultIps(result: unknown, ifName: string): CniIp[] {
  if (!isRecord(result)) return [];
  const out: CniIp[] = [];
  if (Array.isArray(result.ips)) {
    const entries = result.ips.filter(isRecord);
    const interfaces = Array.isArray(result.interfaces) ? result.interfaces : [];
    const ifaceOf = (e: Record<string, unknown>): Record<string, unknown> | undefined => {
      const idx = e.interface;
      if (typeof idx !== 'number' || !Number.isInteger(idx) || idx < 0) return undefined;
      const iface: unknown = interfaces[idx];
      return isRecord(iface) ? iface : undefined;
    };
    const inSandbox = (iface: Record<string, unknown> | undefined): boolean =>
      iface !== undefined && typeof iface.sandbox === 'string' && iface.sandbox !== '';
    let chosen = entries.filter((e) => {
      const iface = ifaceOf(e);
      return inSandbox(iface) && iface?.name === ifName;
    });
    if (chosen.length === 0) chosen = entries.filter((e) => inSandbox(ifaceOf(e)));
    if (chosen.length === 0) chosen = entries.filter((e) => typeof e.interface !== 'number');
    for (const e of chosen) pushIp(out, e.address, e.gateway);
  } else {
    for (const key of ['ip4', 'ip6'] as const) {
      const block = result[key];
      if (isRecord(block)) pushIp(out, block.ip, block.gateway);
    }
  }
  // Stable: IPv4 first, each family in result order.
  return [...out.filter((i) => i.family === 4), ...out.filter((i) => i.family === 6)];
}

function pushIp(out: CniIp[], address: unknown, gateway: unknown): void {
  if (typeof address !== 'string') return;
  const slash = address.indexOf('/');
  const ip = slash < 0 ? address : address.slice(0, slash);
  const family = isIP(ip);
  if (family !== 4 && family !== 6) return;
  const entry: CniIp = { address, ip, family };
  if (typeof gateway === 'string' && isIP(gateway) !== 0) entry.gateway = gateway;
  out.push(entry);
}
