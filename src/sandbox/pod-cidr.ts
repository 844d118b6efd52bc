/**
 * The node's pod CIDRs, which kubelet sends with UpdateRuntimeConfig: kept in a file under the
 * root dir (written durably: temp file, fsync, rename, fsync of the directory), so a restart of
 * crisp still has them, and handed to CNI as the ipRanges capability (one range set per CIDR, as
 * host-local takes them for dual stack).
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';

/** "10.244.1.0/24" or "fd00::/64" → itself; anything else is an InvalidArgumentError naming `field`. */
export function checkCidr(cidr: string, field: string): string {
  const [ip = '', prefix = '', ...rest] = cidr.split('/');
  const family = isIP(ip);
  const bits = Number(prefix);
  if (rest.length > 0 || family === 0 || !/^\d{1,3}$/.test(prefix) || bits > (family === 4 ? 32 : 128)) {
    throw new InvalidArgumentError(field, `${JSON.stringify(cidr)} is not a CIDR (e.g. 10.244.1.0/24)`);
  }
  return cidr;
}

/** kubelet's pod_cidr: one CIDR, or an IPv4 and an IPv6 one separated by a comma. */
export function parsePodCidrs(value: string, field: string): string[] {
  if (value.trim() === '') return [];
  return value.split(',').map((c) => checkCidr(c.trim(), field));
}

/** The CNI ipRanges capability value for these CIDRs (undefined for none). */
export function ipRanges(cidrs: readonly string[]): { subnet: string }[][] | undefined {
  return cidrs.length > 0 ? cidrs.map((subnet) => [{ subnet }]) : undefined;
}

export class PodCidrStore {
  #cidrs: string[] = [];
  #writes: Promise<void> = Promise.resolve();

  constructor(private readonly file: string) {}

  get cidrs(): readonly string[] {
    return this.#cidrs;
  }

  /** Reads the recorded CIDRs (none if the file is missing). */
  async load(): Promise<void> {
    const text = await readFile(this.file, 'utf8').catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw err;
    });
    this.#cidrs = parsePodCidrs(text.trim(), this.file);
  }

  /**
   * Records new CIDRs durably, then uses them for the next pods. Calls run one after the other,
   * so the file and the CIDRs in use are always the last call's (kubelet may send two at once).
   */
  set(cidrs: readonly string[]): Promise<void> {
    const run = this.#writes.then(async () => {
      await writeFileAtomic(this.file, cidrs.join(','));
      this.#cidrs = [...cidrs];
    });
    this.#writes = run.catch(() => undefined);
    return run;
  }
}
