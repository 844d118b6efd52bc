/**
 * Every on-disk location crisp uses, derived from root_dir (persistent, survives reboots) and run_dir
 * (volatile, expected on tmpfs). No other module builds these paths itself.
 */
import { posix } from 'node:path';
import type { CrispConfig } from './schema.js';

export interface CrispPaths {
  /** LevelDB state database. */
  readonly stateDb: string;
  /** Per-container persistent files (containers/<id>). */
  readonly containersDir: string;
  /** Content-addressed image blobs. */
  readonly blobsDir: string;
  /** Unpacked image layers. */
  readonly layersDir: string;
  /** OCI bundles (config.json, rootfs mount point) per container. */
  readonly bundlesDir: string;
  /** Exit files written by conmon. */
  readonly exitsDir: string;
  /** Attach sockets. */
  readonly attachDir: string;
  /** Pinned network namespaces. */
  readonly netnsDir: string;
  /** Scratch space on the root filesystem (archive imports); emptied at start. */
  readonly tmpDir: string;
  /** The daemon's pid file. */
  readonly pidFile: string;
  /** The operator's admin socket (`crisp image import` talks to it). */
  readonly adminSocket: string;
  /** runc --root for every container crisp runs. */
  readonly runcRoot: string;
  /** Per-pod files: hostname, hosts, resolv.conf, shm. */
  readonly podsDir: string;
  /** Scratch space for ExecSync. */
  readonly execDir: string;
  /** CNI ADD results per pod and interface (libcni's cache format), for DEL after a restart. */
  readonly cniResultsDir: string;
  /** kubelet's pod CIDRs from UpdateRuntimeConfig. */
  readonly podCidrFile: string;
}

export function derivePaths(config: Pick<CrispConfig, 'root_dir' | 'run_dir'>): CrispPaths {
  const root = (name: string): string => posix.join(config.root_dir, name);
  const run = (name: string): string => posix.join(config.run_dir, name);
  return Object.freeze({
    stateDb: root('state'),
    containersDir: root('containers'),
    blobsDir: root('blobs'),
    layersDir: root('layers'),
    bundlesDir: run('bundles'),
    exitsDir: run('exits'),
    attachDir: run('attach'),
    netnsDir: run('netns'),
    tmpDir: root('tmp'),
    pidFile: run('crisp.pid'),
    adminSocket: run('admin.sock'),
    runcRoot: run('runc'),
    podsDir: run('pods'),
    execDir: run('exec'),
    cniResultsDir: root('cni/results'),
    podCidrFile: root('pod-cidr'),
  });
}
