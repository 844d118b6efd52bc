/**
 * The per-pod files every container of a pod sees, under `<run_dir>/pods/<podId>/`:
 *   hostname     `<hostname>\n`                                      → /etc/hostname
 *   hosts        see renderHosts / the host's copy                   → /etc/hosts (when kubelet mounts none)
 *   resolv.conf  from the pod's DNS config, else the host's copy     → /etc/resolv.conf
 *   shm/         a tmpfs (nosuid,nodev,noexec,mode=1777,size=64 MiB) → /dev/shm; the host's /dev/shm for hostIpc
 * (docs: /work/shared/notes/oci-runtime-spec-for-cri.md §2; containerd 1.7 does the same.)
 *
 * Files are written atomically (temp file, chmod 0644, rename). The shm tmpfs is mounted with
 * util-linux `mount -t tmpfs` and unmounted with `umount -l`, each bounded by a timeout.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { join, resolve } from 'node:path';
import { CommandError, FailedPreconditionError, InternalError, InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { readMountInfo, topMountAt } from '../netns/netns.js';
import { CommandFailure, runCommand } from '../util/command.js';
import { errnoCode } from '../util/errno.js';

export const DEFAULT_SHM_SIZE_BYTES = 64 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_STACKED_MOUNTS = 8;
/** Pod ids are crisp ids: lowercase hex, at most 64 characters. */
const POD_ID_RE = /^[0-9a-f]{1,64}$/;
/** Linux HOST_NAME_MAX: sethostname(2) refuses more. */
const HOSTNAME_MAX = 64;

export interface PodDnsConfig {
  servers: readonly string[];
  searches: readonly string[];
  options: readonly string[];
}

export interface PodFilesCreateOptions {
  /** RFC 1123; may be empty only for a host-network pod (the node's hostname is used then). */
  hostname: string;
  /** Absent, or all lists empty: resolv.conf is a copy of the host's. */
  dns?: PodDnsConfig;
  hostNetwork: boolean;
  hostIpc: boolean;
  /** Default 64 MiB. Ignored for hostIpc. */
  shmSizeBytes?: number;
  /** The pod's IPs, when known: hosts then maps the hostname to them instead of 127.0.1.1. */
  podIps?: readonly string[];
}

export interface PodFilePaths {
  dir: string;
  hostname: string;
  hosts: string;
  resolvConf: string;
  /** `<dir>/shm`, or the host's /dev/shm for a hostIpc pod. */
  shm: string;
}

export interface PodFilesOptions {
  log?: Logger;
  /** Bound on each mount/umount. Default 10 s. */
  timeoutMs?: number;
  /** The host files copied for host-network pods / pods without DNS config; defaults /etc/hosts, /etc/resolv.conf. */
  hostHostsFile?: string;
  hostResolvConf?: string;
  /** The host's shm directory handed to hostIpc pods; default /dev/shm. */
  hostShmDir?: string;
  tools?: Partial<{ mount: string; umount: string }>;
}

export class PodFiles {
  readonly rootDir: string;
  readonly #log: Logger | undefined;
  readonly #timeoutMs: number;
  readonly #hostHosts: string;
  readonly #hostResolv: string;
  readonly #hostShm: string;
  readonly #mount: string;
  readonly #umount: string;

  constructor(rootDir: string /* <run_dir>/pods */, opts: PodFilesOptions = {}) {
    this.rootDir = resolve(rootDir);
    this.#log = opts.log;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#hostHosts = opts.hostHostsFile ?? '/etc/hosts';
    this.#hostResolv = opts.hostResolvConf ?? '/etc/resolv.conf';
    this.#hostShm = opts.hostShmDir ?? '/dev/shm';
    this.#mount = opts.tools?.mount ?? 'mount';
    this.#umount = opts.tools?.umount ?? 'umount';
  }

  /** Where the pod's files are (pure; no I/O). Pass hostIpc to get the host's shm dir. */
  paths(podId: string, opts: { hostIpc?: boolean } = {}): PodFilePaths {
    if (!POD_ID_RE.test(podId)) {
      throw new InvalidArgumentError(
        'podId',
        `${JSON.stringify(podId)} is not a crisp id (1-64 lowercase hex)`,
      );
    }
    const dir = join(this.rootDir, podId);
    return {
      dir,
      hostname: join(dir, 'hostname'),
      hosts: join(dir, 'hosts'),
      resolvConf: join(dir, 'resolv.conf'),
      shm: opts.hostIpc === true ? this.#hostShm : join(dir, 'shm'),
    };
  }

  /**
   * Writes the pod's files and mounts its shm. Everything is validated before anything is
   * written. Repeatable: the files are rewritten and shm is mounted only if it is not yet. On
   * failure, what this call created is undone.
   */
  async create(podId: string, opts: PodFilesCreateOptions): Promise<PodFilePaths> {
    const paths = this.paths(podId, { hostIpc: opts.hostIpc });
    const hostname = checkHostname(opts.hostname, opts.hostNetwork);
    const resolvConf = opts.dns === undefined ? undefined : renderResolvConf(opts.dns);
    const podIps = checkPodIps(opts.podIps ?? []);
    const shmSize = opts.shmSizeBytes ?? DEFAULT_SHM_SIZE_BYTES;
    if (!Number.isSafeInteger(shmSize) || shmSize <= 0) {
      throw new InvalidArgumentError('shmSizeBytes', `${shmSize} is not a positive whole number of bytes`);
    }

    await fsStep(`create ${this.rootDir}`, () => mkdir(this.rootDir, { recursive: true, mode: 0o755 }));
    let createdDir = false;
    try {
      await mkdir(paths.dir, { mode: 0o755 });
      createdDir = true;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw new InternalError(`cannot create ${paths.dir}`, { cause: err });
    }
    let mountedShm = false;
    try {
      await writeAtomic(paths.hostname, `${hostname}\n`);
      const hosts = opts.hostNetwork
        ? ((await readHostFile(this.#hostHosts)) ?? renderHosts(hostname, []))
        : renderHosts(hostname, podIps);
      await writeAtomic(paths.hosts, hosts);
      await writeAtomic(paths.resolvConf, resolvConf ?? (await readHostFile(this.#hostResolv)) ?? '');
      if (!opts.hostIpc) {
        await fsStep(`create ${paths.shm}`, () => mkdir(paths.shm, { recursive: true, mode: 0o755 }));
        const real = await realpath(paths.shm);
        if (topMountAt(await readMountInfo(), real)?.fsType !== 'tmpfs') {
          await this.#run(`mount the shm of pod ${podId}`, this.#mount, [
            '-t',
            'tmpfs',
            '-o',
            `nosuid,nodev,noexec,mode=1777,size=${shmSize}`,
            'shm',
            paths.shm,
          ]);
          mountedShm = true;
        }
      }
    } catch (err) {
      await this.#undoCreate(podId, paths, createdDir, mountedShm);
      throw err;
    }
    this.#log?.debug({ sandboxId: podId, dir: paths.dir }, 'pod files created');
    return paths;
  }

  async #undoCreate(
    podId: string,
    paths: PodFilePaths,
    createdDir: boolean,
    mountedShm: boolean,
  ): Promise<void> {
    try {
      if (createdDir) {
        await this.remove(podId);
      } else if (mountedShm) {
        await this.#unmountAll(podId, paths.shm);
      }
    } catch (err) {
      this.#log?.warn({ sandboxId: podId, err }, 'could not undo failed pod file creation');
    }
  }

  /**
   * Unmounts the pod's shm (every stacked mount; not mounted is fine) and removes the pod
   * directory. Idempotent. Refuses (FailedPreconditionError) to delete through any other mount
   * found under the directory.
   */
  async remove(podId: string): Promise<void> {
    const paths = this.paths(podId);
    let realDir: string;
    try {
      realDir = await realpath(paths.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw new InternalError(`cannot resolve ${paths.dir}`, { cause: err });
    }
    await this.#unmountAll(podId, join(realDir, 'shm'));
    const left = (await readMountInfo()).find(
      (m) => m.mountPoint === realDir || m.mountPoint.startsWith(`${realDir}/`),
    );
    if (left !== undefined) {
      throw new FailedPreconditionError(
        `pod files of ${podId}: ${left.mountPoint} is still mounted (${left.fsType}); unmount it, then retry`,
        { details: { sandboxId: podId, mountPoint: left.mountPoint } },
      );
    }
    await fsStep(`remove ${paths.dir}`, () => rm(paths.dir, { recursive: true, force: true }));
    this.#log?.debug({ sandboxId: podId, dir: paths.dir }, 'pod files removed');
  }

  /** `mountPoint` must be a real path (mountinfo shows real paths). */
  async #unmountAll(podId: string, mountPoint: string): Promise<void> {
    const mounted = async (): Promise<boolean> => topMountAt(await readMountInfo(), mountPoint) !== undefined;
    for (let n = 0; await mounted(); n++) {
      if (n >= MAX_STACKED_MOUNTS) {
        throw new InternalError(`${mountPoint} is still mounted after ${MAX_STACKED_MOUNTS} unmounts`);
      }
      try {
        await this.#run(`unmount the shm of pod ${podId}`, this.#umount, ['-l', mountPoint]);
      } catch (err) {
        if (await mounted()) throw err;
      }
    }
  }

  async #run(step: string, file: string, args: readonly string[]): Promise<void> {
    const log = this.#log;
    try {
      await runCommand(
        file,
        args,
        { timeoutMs: this.#timeoutMs },
        log === undefined
          ? undefined
          : (fields, msg) => {
              log.debug(fields, msg);
            },
      );
    } catch (err) {
      if (!(err instanceof CommandFailure)) throw err;
      const what =
        err.reason === 'exit'
          ? err.stderrTail
          : `${err.reason}${err.stderrTail ? `: ${err.stderrTail}` : ''}`;
      throw new CommandError(err.command, err.exitCode, `${step}${what ? `: ${what}` : ''}`, {
        cause: err,
        details: { step, argv: err.argv, reason: err.reason },
      });
    }
  }
}

// --- content ---------------------------------------------------------------------------------

/**
 * /etc/hosts for a pod with its own network namespace: the standard localhost lines (as
 * kubelet writes them) and the hostname mapped to the pod's IPs, or to 127.0.1.1 (the Debian
 * convention) while the IPs are not known, so the pod's own name always resolves.
 */
export function renderHosts(hostname: string, podIps: readonly string[]): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
  ];
  for (const ip of podIps.length > 0 ? podIps : ['127.0.1.1']) lines.push(`${ip}\t${hostname}`);
  return `${lines.join('\n')}\n`;
}

/**
 * resolv.conf from a pod's DNS config (`search a b`, `nameserver x` lines, `options o1 o2`), or
 * undefined when every list is empty (the caller then copies the host's, as containerd does).
 * Entries are written as given, as containerd and CRI-O write them: the file is the pod's own,
 * and what kubelet sends is checked by the API server already.
 */
export function renderResolvConf(dns: PodDnsConfig): string | undefined {
  const lines: string[] = [];
  if (dns.searches.length > 0) lines.push(`search ${dns.searches.join(' ')}`);
  for (const s of dns.servers) lines.push(`nameserver ${s}`);
  if (dns.options.length > 0) lines.push(`options ${dns.options.join(' ')}`);
  return lines.length > 0 ? `${lines.join('\n')}\n` : undefined;
}

/**
 * The pod's host name: the one requested, or for an empty one the node's (host-network pods) and
 * the first 12 hex digits of the pod's id otherwise. This is CRI-O's rule; containerd gives every
 * such pod the node's name, which would make a pod's /etc/hosts map the node's name to the pod.
 */
export function podHostname(requested: string, hostNetwork: boolean, podId: string): string {
  if (requested !== '') return requested;
  return hostNetwork ? osHostname() : podId.slice(0, 12);
}

/**
 * A host name the kernel takes: at most 64 bytes (sethostname(2) refuses more). Nothing else is
 * refused, as in containerd and CRI-O (kubelet sends RFC 1123 labels; critest sends none at all).
 * '' stands for the node's name and is allowed only for a host-network pod: every other caller
 * resolves it with podHostname first.
 */
export function checkHostname(hostname: string, hostNetwork: boolean, field = 'config.hostname'): string {
  if (hostname === '') {
    if (hostNetwork) return osHostname();
    throw new InvalidArgumentError(field, 'must not be empty unless the pod uses the host network');
  }
  const bytes = Buffer.byteLength(hostname, 'utf8');
  if (bytes > HOSTNAME_MAX) {
    throw new InvalidArgumentError(
      field,
      `${JSON.stringify(hostname.slice(0, 80))} is ${bytes} bytes long; the kernel takes host names of at most ${HOSTNAME_MAX} bytes`,
    );
  }
  return hostname;
}

function checkPodIps(ips: readonly string[]): readonly string[] {
  ips.forEach((ip, i) => {
    if (isIP(ip) === 0)
      throw new InvalidArgumentError(`podIps[${i}]`, `${JSON.stringify(ip)} is not an IP address`);
  });
  return ips;
}

// --- fs helpers ------------------------------------------------------------------------------

/** Temp file in the same directory, mode 0644 whatever the umask, then rename over `file`. */
async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(tmp, text, { flag: 'wx', mode: 0o644 });
    await chmod(tmp, 0o644);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new InternalError(`cannot write ${file}`, { cause: err });
  }
}

/** The host file's text, or undefined if it does not exist. */
async function readHostFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new InternalError(`cannot read ${file}`, { cause: err });
  }
}

async function fsStep(what: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    throw new InternalError(`cannot ${what}`, { cause: err });
  }
}
