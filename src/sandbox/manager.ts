/**
 * Pod sandboxes: a pinned network namespace, the pod's files (hostname, hosts, resolv.conf,
 * /dev/shm) and the infra container (the pause image) that holds the pod's namespaces. The
 * pod's application containers are created here too, because only the pod knows the context
 * (namespaces, files, cgroup parent) their specs need; the container engine runs them.
 *
 * Every step of RunPodSandbox is undone, in reverse, when a later one fails; Stop is
 * idempotent; Remove leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, normalize, relative } from 'node:path';
import {
  AlreadyExistsError,
  CanceledError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
} from '../errors.js';
import {
  timed,
  type ContainerManager,
  type ContainerObserver,
  type CreateRequest,
  type StoredContainer,
} from '../container/manager.js';
import { seccompForContainer } from '../container/seccomp.js';
import { checkAppArmorProfile } from '../container/apparmor.js';
import { buildContainerSpec, buildInfraSpec, containerResources } from '../container/spec.js';
import { hostDevices, resolveDevices } from '../container/devices.js';
import { applyPodLimits, podCgroupPath, podLimits } from './pod-cgroup.js';
import type { IdMaps } from '../container/rootfs.js';
import { podBandwidth, type PodNetwork, type PodNetworkRef, type PodPortMapping } from './pod-network.js';
import { ipRanges, type PodCidrStore } from './pod-cidr.js';
import type {
  ContainerResourcesInput,
  ContainerSpecInput,
  MountInput,
  PodContext,
  ResourceFacts,
} from '../container/spec-types.js';
import { resolveInRoot, resolveUser } from '../container/user.js';
import { checkLogPathContained } from '../container/log-path.js';
import type { ImageService } from '../image/service.js';
import type { Logger } from '../log/logger.js';
import type { NetnsManager } from '../netns/netns.js';
import { dialInNetns, type NetnsConnection } from '../netns/dial.js';
import { StoreBatch } from '../store/batch.js';
import { IntentJournal, type Intent } from '../store/intents.js';
import { errnoCode } from '../util/errno.js';
import { failpoint } from '../util/failpoint.js';
import { within } from '../util/deadline.js';
import { mapLimit } from '../util/map-limit.js';
import type { JsonValue, RecordInput, SandboxState } from '../store/records.js';
import type { StateStore, StoredSandbox } from '../store/state-store.js';
import { CallerGoneError, JoinableWork } from '../util/joinable-work.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { podHostname, type PodFiles } from './pod-files.js';
import { byIdOrPrefix } from '../store/id-prefix.js';
import { isActive } from '../container/state.js';

export type { StoredSandbox } from '../store/state-store.js';
export type { JsonValue } from '../store/records.js';

export interface SandboxSettings {
  /** The pause image (the built-in one unless crisp.toml names another). */
  pauseImage: string;
  cgroupDriver: 'cgroupfs' | 'systemd';
  /** When set, a requested oom_score_adj below it is raised to it. */
  oomScoreAdjFloor: number | undefined;
  /** How long a result whose caller went away waits for a retry (default UNCOLLECTED_GRACE_MS). */
  uncollectedGraceMs?: number;
  /** The capabilities crisp itself holds, and so can grant (privileged containers get these). */
  availableCapabilities?: readonly string[];
  /** Whether the node runs AppArmor. */
  apparmorEnabled?: boolean;
  /** What the node's cgroups can do, and crisp's pids and hugetlb settings. */
  resourceFacts?: ResourceFacts;
  /** Where the cgroup hierarchies are mounted (default /sys/fs/cgroup). */
  cgroupRoot?: string;
  /** Whether pods may have their own user namespace (id-mapped mounts work here). */
  userNamespaces?: boolean;
  /** Whether mounts can be made read-only recursively here (mount_setattr and the helper work). */
  recursiveReadOnlyMounts?: boolean;
  /** kubelet's pod CIDRs (UpdateRuntimeConfig), loaded; CNI gets them as ipRanges. */
  podCidrs?: PodCidrStore;
}

export interface RunPodInput {
  name: string;
  namespace: string;
  uid: string;
  attempt: number;
  /**
   * PodSandboxConfig.hostname; '' gives the node's host name to a host-network pod and the first
   * 12 hex digits of the pod's id to any other (CRI-O's rule; docs/limits.md).
   */
  hostname: string;
  logDirectory: string;
  dns: { servers: string[]; searches: string[]; options: string[] } | undefined;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  cgroupParent: string;
  hostNetwork: boolean;
  hostPid: boolean;
  hostIpc: boolean;
  privileged: boolean;
  sysctls: Record<string, string>;
  /** The pod's user namespace maps (userns_options mode POD); undefined = the host's. */
  userns?: IdMaps;
  /** PodSandboxConfig.port_mappings with a host port, for CNI's portMappings capability. */
  portMappings?: PodPortMapping[];
  runtimeHandler: string;
  criConfig: JsonValue;
}

/** A CRI Mount with `image` set: another pulled image, mounted read-only (and noexec). */
export interface ImageMountInput {
  containerPath: string;
  /** The image as the request names it (tag, digest or id). */
  image: string;
  /** A path inside the image to mount instead of its root ('' = the root). */
  subPath: string;
  /** The request field (`config.mounts[i]`), named in errors. */
  field: string;
}

export interface CreateContainerInput {
  /** The request's stop signal; undefined = the image's (or SIGTERM). */
  stopSignal?: string;
  /** Image volumes, mounted after the rootfs and bound in with the other mounts. */
  imageMounts?: readonly ImageMountInput[];
  /**
   * The container's own userns_options, when it sent them: its maps for POD, null for NODE. They
   * must be the pod's (a container cannot leave or change its pod's user namespace).
   */
  userns?: IdMaps | null;
  /** The container part of the spec input; the pod part comes from the sandbox. */
  spec: Omit<ContainerSpecInput, 'id' | 'sandboxId' | 'image'>;
  attempt: number;
  image: string;
  logPath: string;
  criConfig: JsonValue;
}

export interface SandboxView {
  sandbox: StoredSandbox;
  /** READY when recorded ready and the infra container runs. */
  ready: boolean;
  infra: StoredContainer | undefined;
  /** true until the start-up recovery has checked the pod (and its infra container). */
  recoveryPending?: boolean;
}

/**
 * Mount sources as the kernel will see them: symlinks resolved on the host (so a link cannot
 * be swapped between here and runc). A missing source is made as a directory (mode 0755), as
 * containerd and CRI-O do: kubelet passes a hostPath volume of no type without checking it.
 */
async function resolveMountSources(mounts: readonly MountInput[]): Promise<MountInput[]> {
  return Promise.all(
    mounts.map(async (m, i) => {
      try {
        return { ...m, hostPath: await realpath(m.hostPath) };
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw mountSourceError(i, m.hostPath, err);
      }
      try {
        await mkdir(m.hostPath, { recursive: true, mode: 0o755 });
        return { ...m, hostPath: await realpath(m.hostPath) };
      } catch (err) {
        throw mountSourceError(i, m.hostPath, err, 'is missing and could not be made');
      }
    }),
  );
}

function mountSourceError(
  i: number,
  hostPath: string,
  err: unknown,
  what = 'cannot be used',
): InvalidArgumentError {
  return new InvalidArgumentError(
    `config.mounts[${i}].host_path`,
    `${JSON.stringify(hostPath)} ${what} (${errnoCode(err) ?? String(err)})`,
    { cause: err },
  );
}

/**
 * The bind mounts of mounted image volumes: the volume (or its sub path, symlinks resolved inside
 * the image, never out of it), read-only, nosuid, nodev and noexec, as Kubernetes documents image
 * volumes. A sub path the image lacks is an InvalidArgumentError naming it.
 */
async function imageVolumeMounts(
  requested: readonly ImageMountInput[],
  mounted: readonly string[],
): Promise<MountInput[]> {
  return Promise.all(
    requested.map(async (m, i) => {
      const root = mounted[i];
      if (root === undefined) throw new InternalError(`image volume ${i} (${m.field}) was not mounted`);
      let source = root;
      if (m.subPath !== '') {
        source = await resolveInRoot(root, m.subPath);
        try {
          await stat(source);
        } catch {
          throw new InvalidArgumentError(
            `${m.field}.image_sub_path`,
            `${JSON.stringify(m.subPath)} does not exist in image ${JSON.stringify(m.image)}`,
          );
        }
      }
      return {
        containerPath: m.containerPath,
        hostPath: source,
        readonly: true,
        propagation: 'private',
        extraOptions: ['nosuid', 'nodev', 'noexec'],
      };
    }),
  );
}

/** The pod's maps as the spec builder takes them (OCI field names); {} without a user namespace. */
function ociUserns(maps: IdMaps | undefined): Pick<PodContext, 'userns'> {
  if (!maps) return {};
  const oci = (list: IdMaps['uids']) =>
    list.map((m) => ({ containerID: m.containerId, hostID: m.hostId, size: m.size }));
  return { userns: { uids: oci(maps.uids), gids: oci(maps.gids) } };
}

/** The identity CNI knows a pod by (CNI_CONTAINERID, CNI_NETNS, CNI_ARGS). */
function networkRef(
  c: Pick<RecordInput<'sandboxConfig'>, 'id' | 'netnsPath' | 'name' | 'namespace' | 'uid'>,
): PodNetworkRef {
  return { sandboxId: c.id, netnsPath: c.netnsPath, name: c.name, namespace: c.namespace, uid: c.uid };
}

function withIpRanges(cidrs: readonly string[]): { capabilityArgs?: Record<string, unknown> } {
  const ranges = ipRanges(cidrs);
  return ranges ? { capabilityArgs: { ipRanges: ranges } } : {};
}

function withBandwidth(annotations: Readonly<Record<string, string>>): {
  bandwidth?: ReturnType<typeof podBandwidth>;
} {
  const bandwidth = podBandwidth(annotations);
  return bandwidth ? { bandwidth } : {};
}

function sameMaps(a: IdMaps | undefined, b: IdMaps | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/**
 * The name a pod or container reserves, `k8s_<part>_<part>...` as kubelet's dockershim named them.
 * "%" and "_" inside a part are escaped (%25, %5F), so two different pods never share a name
 * whatever their metadata holds; parts without either are written as they are.
 */
function reservedName(parts: readonly string[]): string {
  return `k8s_${parts.map((p) => p.replaceAll('%', '%25').replaceAll('_', '%5F')).join('_')}`;
}

function nowNs(): string {
  return (BigInt(Date.now()) * 1_000_000n).toString();
}

/** How long a pod or container whose caller went away waits for kubelet's retry. */
export const UNCOLLECTED_GRACE_MS = 120_000;

/** A caller that went away gets CANCELED (it is not listening any more anyway). */
async function joined(work: Promise<string>): Promise<string> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof CallerGoneError) throw new CanceledError(err.message, { cause: err });
    throw err;
  }
}

export class SandboxManager {
  private readonly locks = new KeyedMutex();
  private readonly podRuns: JoinableWork<string>;
  private readonly containerCreates: JoinableWork<string>;
  private readonly journal: IntentJournal;
  /** Pods recorded before this start that recovery has not checked yet. */
  private readonly unchecked = new Set<string>();

  constructor(
    private readonly deps: {
      store: StateStore;
      containers: ContainerManager;
      images: ImageService;
      netns: NetnsManager;
      /** Pod networking (CNI); without it, pods get only their network namespace with lo. */
      network?: PodNetwork;
      podFiles: PodFiles;
      log: Logger;
      observer?: ContainerObserver;
    },
    private readonly settings: SandboxSettings,
  ) {
    this.journal = new IntentJournal(deps.store);
    for (const s of deps.store.listSandboxes()) this.unchecked.add(s.config.id);
    const grace = settings.uncollectedGraceMs ?? UNCOLLECTED_GRACE_MS;
    this.podRuns = new JoinableWork(grace, async (key, id) => {
      this.deps.log.warn({ sandboxId: id, name: key }, 'removing a pod sandbox nobody collected');
      await this.remove(id);
    });
    this.containerCreates = new JoinableWork(grace, async (key, id) => {
      this.deps.log.warn({ containerId: id, name: key }, 'removing a container nobody collected');
      await this.deps.containers.remove(id);
    });
  }

  // --- reads ---------------------------------------------------------------------------------

  /** Records kubelet's pod CIDRs (durably) for the networks of the pods created from now on. */
  async setPodCidrs(cidrs: readonly string[]): Promise<void> {
    const store = this.settings.podCidrs;
    if (!store) return;
    await store.set(cidrs);
    this.deps.log.info({ podCidrs: cidrs }, 'pod CIDR updated');
  }

  /** Whether CRI recursive_read_only mounts can be honoured on this node. */
  get recursiveReadOnlyMounts(): boolean {
    return this.settings.recursiveReadOnlyMounts === true;
  }

  find(idOrPrefix: string): StoredSandbox | undefined {
    const { store } = this.deps;
    return byIdOrPrefix(
      idOrPrefix,
      store.getSandbox(idOrPrefix),
      () => store.listSandboxes(),
      'pod_sandbox_id',
      'pod sandboxes',
    );
  }

  get(id: string): StoredSandbox {
    const found = this.find(id);
    if (!found) throw new NotFoundError('pod sandbox', id);
    return found;
  }

  infraOf(sandboxId: string): StoredContainer | undefined {
    return this.deps.containers
      .list()
      .find((c) => c.config.sandboxId === sandboxId && c.config.kind === 'infra');
  }

  view(sandbox: StoredSandbox, infra = this.infraOf(sandbox.config.id)): SandboxView {
    return {
      sandbox,
      infra,
      ready: sandbox.state.state === 'ready' && infra?.state.state === 'running',
      recoveryPending:
        this.unchecked.has(sandbox.config.id) ||
        (infra !== undefined && this.deps.containers.isUnchecked(infra.config.id)),
    };
  }

  async status(id: string): Promise<SandboxView> {
    const sandbox = this.get(id);
    const infra = this.infraOf(sandbox.config.id);
    if (infra) await this.deps.containers.refresh(infra.config.id);
    return this.view(this.get(sandbox.config.id));
  }

  /** The pod if it is ready; PortForward is refused (FAILED_PRECONDITION) for any other pod. */
  async requireReady(id: string, op: string): Promise<StoredSandbox> {
    const view = await this.status(id);
    if (!view.ready) {
      throw new FailedPreconditionError(
        `pod sandbox "${view.sandbox.config.id}" is not ready (${view.sandbox.state.state}): cannot ${op} it; start a new pod`,
      );
    }
    return view.sandbox;
  }

  /** A TCP connection to localhost:`port` in the pod's network namespace (CRI PortForward). */
  async dialPort(id: string, port: number): Promise<NetnsConnection> {
    const sandbox = await this.requireReady(id, 'port-forward to');
    // A host-network pod's containers are in the namespace crisp (and so conmon and runc) runs
    // in. That is the node's on a real node, but not always pid 1's: crisp may run in a
    // namespace of its own (a container, a test), and pid 1's may be closed to it.
    const ns = sandbox.config.hostNetwork ? `/proc/${process.pid}/ns/net` : sandbox.config.netnsPath;
    return dialInNetns(ns, port, {
      debug: (f, m) => {
        this.deps.log.debug({ ...f, sandboxId: sandbox.config.id }, m);
      },
    });
  }

  /** One pass over the containers for all pods, not one per pod: this is ListPodSandbox's path. */
  list(): SandboxView[] {
    const infras = new Map<string, StoredContainer>();
    for (const c of this.deps.containers.list()) {
      if (c.config.kind === 'infra' && !infras.has(c.config.sandboxId)) infras.set(c.config.sandboxId, c);
    }
    return this.deps.store.listSandboxes().map((s) => this.view(s, infras.get(s.config.id)));
  }

  // --- run -----------------------------------------------------------------------------------

  /**
   * Runs a pod. A retry of the same pod (same metadata) while the first call still works joins
   * it and gets its id; a pod whose callers all went away is kept for a retry for a while, then
   * removed (util/joinable-work.ts).
   */
  async run(input: RunPodInput, signal?: AbortSignal): Promise<string> {
    const nameKey = reservedName(['POD', input.name, input.namespace, input.uid, String(input.attempt)]);
    return joined(this.podRuns.run(nameKey, signal, () => this.runNew(input, nameKey)));
  }

  private async runNew(input: RunPodInput, nameKey: string): Promise<string> {
    const { store, log } = this.deps;
    this.deps.containers.requireHandler(input.runtimeHandler);
    if (input.userns && this.settings.userNamespaces !== true) {
      throw new FailedPreconditionError(
        'user namespaces (userns_options mode POD) are not available on this node: crisp needs id-mapped mounts (Linux 5.12+, python3 for bin/crisp-idmap-mount); the Status runtime handler features say so',
      );
    }
    const holder = store.getName(nameKey);
    if (holder) {
      throw new AlreadyExistsError('pod sandbox name', nameKey, {
        hint: `it is held by pod sandbox ${holder.id}; remove it first`,
      });
    }
    const id = randomBytes(32).toString('hex');
    input = { ...input, hostname: podHostname(input.hostname, input.hostNetwork, id) };
    const undo: (() => Promise<unknown>)[] = [];
    const config: RecordInput<'sandboxConfig'> = {
      id,
      name: input.name,
      namespace: input.namespace,
      uid: input.uid,
      attempt: input.attempt,
      labels: input.labels,
      annotations: input.annotations,
      runtimeHandler: input.runtimeHandler,
      hostname: input.hostname,
      logDirectory: input.logDirectory,
      hostNetwork: input.hostNetwork,
      hostPid: input.hostPid,
      hostIpc: input.hostIpc,
      privileged: input.privileged,
      netnsPath: '',
      cgroupParent: input.cgroupParent,
      ...(input.userns ? { userns: input.userns } : {}),
      criConfig: input.criConfig,
      createdAt: nowNs(),
    };
    await this.locks.run(`pod:${id}`, async () => {
      try {
        // The netns path is known before the namespace exists, so the record can name it first.
        const netnsPath = input.hostNetwork ? '' : this.deps.netns.pathFor(id);
        const ports = input.portMappings ?? [];
        // One lock for every pod's host ports: the check and the record that claims them.
        const intent = await this.locks.run('host-ports', async () => {
          if (ports.length > 0) this.checkHostPorts(ports);
          const first = new StoreBatch()
            .putSandboxConfig({
              ...config,
              netnsPath,
              ...(ports.length > 0 ? { portMappings: ports } : {}),
            })
            .putSandboxState(id, { state: 'creating', updatedAt: nowNs() })
            .putName(nameKey, { kind: 'sandbox', id });
          const begun = this.journal.beginIn(first, 'run-pod', id, 'recorded');
          await store.commit(first);
          return begun;
        });
        undo.push(() => store.commit(intent.doneIn(new StoreBatch().delSandbox(id).delName(nameKey))));
        failpoint('run-pod:after-record');

        // A user-namespaced pod's infra container makes its network namespace, pinned below.
        if (!input.hostNetwork && !input.userns) {
          await intent.advance('netns');
          await timed(this.deps.observer, 'netns', () => this.deps.netns.create(id));
          undo.push(() => this.deps.netns.remove(netnsPath));
          failpoint('run-pod:after-netns');
          await this.attachNetwork({ ...config, netnsPath }, input, undo, intent);
        }
        await intent.advance('pod-files');
        const files = await timed(this.deps.observer, 'pod_files', () =>
          this.deps.podFiles.create(id, {
            hostname: input.hostname,
            dns: input.dns,
            hostNetwork: input.hostNetwork,
            hostIpc: input.hostIpc,
          }),
        );
        undo.push(() => this.deps.podFiles.remove(id));

        await intent.advance('infra');
        const infra = await this.deps.containers.create(
          this.infraRequest(id, nameKey, input, netnsPath, files),
        );
        undo.push(() => this.deps.containers.remove(infra.config.id));
        failpoint('run-pod:after-infra-create');
        if (!input.hostNetwork && input.userns) {
          const pid = infra.state.pid ?? 0;
          await intent.advance('netns');
          await timed(this.deps.observer, 'netns', () => this.deps.netns.pinFrom(id, pid));
          undo.push(() => this.deps.netns.remove(netnsPath));
          await this.attachNetwork({ ...config, netnsPath }, input, undo, intent);
        }
        await intent.advance('infra-start');
        await this.deps.containers.start(infra.config.id);
        failpoint('run-pod:before-ready');
        await store.commit(
          intent.doneIn(new StoreBatch().putSandboxState(id, { state: 'ready', updatedAt: nowNs() })),
        );
        // No await since the commit: the event's snapshot is the pod as just recorded, READY.
        this.deps.containers.events.publish({
          type: 'STARTED',
          containerId: infra.config.id,
          sandboxId: id,
          kind: 'infra',
        });
      } catch (err) {
        log.warn(
          { sandboxId: id, err: err instanceof Error ? err.message : String(err) },
          'RunPodSandbox failed; undoing',
        );
        for (const step of undo.reverse()) {
          await step().catch((e: unknown) => {
            log.error({ sandboxId: id, err: e }, 'undo step failed');
          });
        }
        throw err;
      }
    });
    log.info({ sandboxId: id, pod: `${input.namespace}/${input.name}` }, 'pod sandbox ready');
    return id;
  }

  /**
   * Refuses host ports another live pod (creating or ready) already maps, for the same protocol
   * and overlapping host IPs (empty or 0.0.0.0 means every address). The portmap plugin would
   * add a second, shadowed rule without complaint; kubelet's scheduler normally prevents this.
   */
  private checkHostPorts(ports: readonly PodPortMapping[]): void {
    const anyIp = (ip: string) => ip === '' || ip === '0.0.0.0' || ip === '::';
    for (const other of this.deps.store.listSandboxes()) {
      if (other.state.state !== 'ready' && other.state.state !== 'creating') continue;
      for (const theirs of other.config.portMappings ?? []) {
        const clash = ports.find(
          (p) =>
            p.hostPort === theirs.hostPort &&
            p.protocol === theirs.protocol &&
            (anyIp(p.hostIP) || anyIp(theirs.hostIP) || p.hostIP === theirs.hostIP),
        );
        if (clash) {
          throw new FailedPreconditionError(
            `host port ${clash.hostPort}/${clash.protocol} is already mapped by pod sandbox "${other.config.id}" (${other.config.namespace}/${other.config.name}): remove that pod or choose another host port`,
          );
        }
      }
    }
  }

  /**
   * CNI ADD for a pod whose network namespace exists; its IPs go into the pod's record. The undo
   * step is a CNI DEL (the spec asks for one after a failed ADD too; the CNI manager does that).
   */
  private async attachNetwork(
    config: RecordInput<'sandboxConfig'>,
    input: RunPodInput,
    undo: (() => Promise<unknown>)[],
    intent: Intent,
  ): Promise<void> {
    const network = this.deps.network;
    if (!network) return;
    const ref = networkRef(config);
    // Before the ADD: a crash during it leaves plugin state (an IP, a veth) that only a DEL,
    // made with the same network, undoes; there is no cache entry yet to say so.
    await intent.advance('cni-add');
    const attached = await timed(this.deps.observer, 'cni', () =>
      network.add({
        ...ref,
        ...(input.portMappings && input.portMappings.length > 0 ? { portMappings: input.portMappings } : {}),
        ...(input.dns ? { dns: input.dns } : {}),
        ...withBandwidth(input.annotations),
        ...withIpRanges(this.settings.podCidrs?.cidrs ?? []),
      }),
    );
    undo.push(() => network.del(ref));
    failpoint('run-pod:after-cni-add');
    const { v: _v, ...recorded } = this.get(config.id).config;
    await this.deps.store.commit(
      new StoreBatch().putSandboxConfig({ ...recorded, ips: attached.ips.map((i) => i.ip) }),
    );
  }

  private infraRequest(
    id: string,
    nameKey: string,
    input: RunPodInput,
    netnsPath: string,
    files: Awaited<ReturnType<PodFiles['create']>>,
  ): CreateRequest {
    return {
      kind: 'infra',
      sandboxId: id,
      name: 'POD',
      attempt: input.attempt,
      nameKey: `${nameKey}_infra`,
      image: this.settings.pauseImage,
      labels: input.labels,
      annotations: input.annotations,
      logPath: '',
      mounts: [],
      tty: false,
      stdin: false,
      stdinOnce: false,
      runtimeHandler: input.runtimeHandler,
      criConfig: {},
      ...(input.userns ? { idmap: input.userns } : {}),
      buildSpec: async ({ rootfs, image }) => {
        const imageInput = { id: image.id, ref: this.settings.pauseImage, run: image.run };
        return buildInfraSpec(
          {
            image: imageInput,
            pod: {
              sandboxId: id,
              sandboxName: input.name,
              sandboxNamespace: input.namespace,
              sandboxUid: input.uid,
              hostname: input.hostNetwork ? '' : input.hostname,
              netnsPath: input.hostNetwork ? undefined : netnsPath,
              hostNetwork: input.hostNetwork,
              hostPid: input.hostPid,
              hostIpc: input.hostIpc,
              privileged: input.privileged,
              cgroupParent: input.cgroupParent,
              cgroupDriver: this.settings.cgroupDriver,
              resolvConfPath: files.resolvConf,
              hostsPath: files.hosts,
              hostnamePath: files.hostname,
              shmPath: files.shm,
              logDirectory: input.logDirectory,
              ...ociUserns(input.userns),
            },
            sysctls: input.sysctls,
            annotations: input.annotations,
          },
          {
            rootfsPath: rootfs,
            user: await resolveUser(rootfs, {}, imageInput),
            ...(this.settings.availableCapabilities
              ? { availableCapabilities: this.settings.availableCapabilities }
              : {}),
            ...(this.settings.oomScoreAdjFloor === undefined
              ? {}
              : { oomScoreAdjFloor: this.settings.oomScoreAdjFloor }),
          },
        );
      },
    };
  }

  // --- containers in the pod -------------------------------------------------------------------

  /** The context an application container of this pod needs for its spec. */
  private podContext(sandbox: StoredSandbox, infra: StoredContainer): PodContext {
    const files = this.deps.podFiles.paths(sandbox.config.id, { hostIpc: sandbox.config.hostIpc });
    const pid = infra.state.pid;
    if (pid === undefined) {
      throw new FailedPreconditionError(`pod sandbox "${sandbox.config.id}" has no running infra container`);
    }
    return {
      sandboxId: sandbox.config.id,
      sandboxName: sandbox.config.name,
      sandboxNamespace: sandbox.config.namespace,
      sandboxUid: sandbox.config.uid,
      hostname: sandbox.config.hostname,
      infraPid: pid,
      netnsPath: sandbox.config.hostNetwork ? undefined : sandbox.config.netnsPath,
      hostNetwork: sandbox.config.hostNetwork,
      hostIpc: sandbox.config.hostIpc,
      hostPid: sandbox.config.hostPid,
      privileged: sandbox.config.privileged,
      cgroupParent: sandbox.config.cgroupParent,
      cgroupDriver: this.settings.cgroupDriver,
      resolvConfPath: files.resolvConf,
      hostsPath: files.hosts,
      hostnamePath: files.hostname,
      shmPath: files.shm,
      logDirectory: sandbox.config.logDirectory,
      ...ociUserns(sandbox.config.userns),
    };
  }

  /** Resolves a CRI log_path against the pod's log_directory, refusing escapes. */
  private logPathFor(sandbox: StoredSandbox, logPath: string): string {
    const dir = sandbox.config.logDirectory;
    // No log directory, no log file: containerd's rule (CRI-O makes a directory of its own).
    if (logPath === '' || dir === '') return '';
    // Joined as containerd and CRI-O join it (an absolute log_path lands under the directory,
    // "a/../b" is "b"); only a path that ends up outside the directory is refused.
    const full = normalize(join(dir, logPath));
    const rel = relative(dir, full);
    if (rel === '' || rel === '..' || rel.startsWith('../') || isAbsolute(rel)) {
      throw new InvalidArgumentError(
        'config.log_path',
        `${JSON.stringify(logPath)} does not name a file inside the pod's log_directory ${JSON.stringify(dir)}`,
      );
    }
    return full;
  }

  /** Creates a container in the pod; a retry with the same metadata joins a create under way. */
  async createContainer(
    sandboxId: string,
    input: CreateContainerInput,
    signal?: AbortSignal,
  ): Promise<string> {
    const sandbox = this.get(sandboxId);
    const nameKey = reservedName([
      input.spec.name,
      sandbox.config.name,
      sandbox.config.namespace,
      sandbox.config.uid,
      String(input.attempt),
    ]);
    return joined(this.containerCreates.run(nameKey, signal, () => this.createNew(sandbox, input, nameKey)));
  }

  private async createNew(
    sandbox: StoredSandbox,
    input: CreateContainerInput,
    nameKey: string,
  ): Promise<string> {
    const view = await this.status(sandbox.config.id);
    if (!view.ready || !view.infra) {
      throw new FailedPreconditionError(
        `pod sandbox "${sandbox.config.id}" is not ready: containers can only be created in a ready pod`,
      );
    }
    if (input.userns !== undefined && !sameMaps(input.userns ?? undefined, sandbox.config.userns)) {
      throw new InvalidArgumentError(
        'config.linux.security_context.namespace_options.userns_options',
        `must be the pod's: pod "${sandbox.config.id}" ${sandbox.config.userns ? 'has its own user namespace' : 'uses the host user namespace'}`,
      );
    }
    const idmapped = input.spec.mounts.find((m) => m.idmap !== undefined);
    if (idmapped && !sandbox.config.userns) {
      throw new InvalidArgumentError(
        'config.mounts.uidMappings',
        `the mount at ${JSON.stringify(idmapped.containerPath)} is id-mapped, which is for pods with their own user namespace, and pod "${sandbox.config.id}" has none`,
      );
    }
    const pod = this.podContext(view.sandbox, view.infra);
    const logPath = this.logPathFor(view.sandbox, input.logPath);
    await checkLogPathContained(view.sandbox.config.logDirectory, logPath);
    const mounts = await resolveMountSources(input.spec.mounts);
    const imageMounts = input.imageMounts ?? [];
    const privileged = input.spec.linux.securityContext?.privileged === true;
    const devices = [
      ...(privileged ? await hostDevices() : []),
      ...(await resolveDevices(input.spec.devices)),
    ];
    const targetPid = (targetId: string | undefined): number | undefined => {
      if (targetId === undefined || targetId === '') return undefined;
      const target = this.deps.containers.find(targetId);
      if (target?.config.sandboxId !== sandbox.config.id || target.state.pid === undefined) {
        throw new FailedPreconditionError(
          `target container "${targetId}" is not running in pod "${sandbox.config.id}"`,
        );
      }
      return target.state.pid;
    };
    const created = await this.deps.containers.create({
      kind: 'app',
      sandboxId: sandbox.config.id,
      name: input.spec.name,
      attempt: input.attempt,
      nameKey,
      image: input.image,
      labels: input.spec.labels,
      annotations: input.spec.annotations,
      logPath,
      mounts,
      tty: input.spec.tty,
      stdin: input.spec.stdin,
      stdinOnce: input.spec.stdinOnce,
      runtimeHandler: sandbox.config.runtimeHandler,
      criConfig: input.criConfig,
      infraContainerId: view.infra.config.id,
      ...(sandbox.config.userns ? { idmap: sandbox.config.userns } : {}),
      ...(input.stopSignal === undefined ? {} : { stopSignal: input.stopSignal }),
      imageVolumes: imageMounts.map((m) => ({ image: m.image, field: `${m.field}.image` })),
      buildSpec: async ({ id, rootfs, image, imageVolumes, idmappedMounts }) => {
        // An id-mapped volume is bound in from where the engine id-mapped it.
        const bound = mounts.map(({ idmap: _idmap, ...m }, i) => {
          const at = idmappedMounts.get(i);
          return at === undefined ? m : { ...m, hostPath: at };
        });
        const specInput: ContainerSpecInput = {
          ...input.spec,
          mounts: [...bound, ...(await imageVolumeMounts(imageMounts, imageVolumes))],
          id,
          sandboxId: sandbox.config.id,
          image: { id: image.id, ref: input.image, run: image.run },
        };
        await checkAppArmorProfile(specInput.linux.securityContext, this.settings.apparmorEnabled === true);
        const user = await resolveUser(rootfs, specInput.linux.securityContext ?? {}, specInput.image);
        const target = targetPid(specInput.linux.securityContext?.namespaces?.targetId);
        const seccomp = await seccompForContainer(
          specInput.linux.securityContext,
          this.settings.availableCapabilities,
        );
        return buildContainerSpec(specInput, pod, {
          ...this.settings.resourceFacts,
          ...(seccomp === undefined ? {} : { seccomp }),
          rootfsPath: rootfs,
          user,
          ...(this.settings.oomScoreAdjFloor === undefined
            ? {}
            : { oomScoreAdjFloor: this.settings.oomScoreAdjFloor }),
          ...(target === undefined ? {} : { targetPid: target }),
          apparmorEnabled: this.settings.apparmorEnabled === true,
          devices,
          ...(this.settings.availableCapabilities
            ? { availableCapabilities: this.settings.availableCapabilities }
            : {}),
        });
      },
    });
    return created.config.id;
  }

  // --- resize --------------------------------------------------------------------------------

  /**
   * After kubelet resized a pod in place: checks the new resources as CreateContainer would,
   * writes them plus the overhead to the pod's cgroup (kubelet's cgroup_parent), and records them
   * in the pod's state. A pod without a cgroup parent has no cgroup of its own: only the record
   * changes. Whatever fails before the cgroup write changes nothing.
   */
  async updateResources(
    id: string,
    resources: ContainerResourcesInput | undefined,
    overhead: ContainerResourcesInput | undefined,
    asReceived: JsonValue,
  ): Promise<void> {
    const sandbox = this.get(id);
    const sid = sandbox.config.id;
    const facts = this.settings.resourceFacts ?? {};
    containerResources(resources, [], facts, 'resources');
    containerResources(overhead, [], facts, 'overhead');
    await this.locks.run(`pod:${sid}`, async () => {
      const current = this.get(sid);
      if (current.state.state !== 'ready') {
        throw new FailedPreconditionError(
          `pod sandbox "${sid}" is ${current.state.state}: only a ready pod's resources can be updated`,
        );
      }
      if (current.config.cgroupParent !== '') {
        await applyPodLimits(
          this.settings.cgroupRoot ?? '/sys/fs/cgroup',
          facts.cgroupV2 === true ? 2 : 1,
          podCgroupPath(this.settings.cgroupDriver, current.config.cgroupParent),
          podLimits(resources, overhead),
        );
      }
      await this.deps.store.commit(
        new StoreBatch().putSandboxState(sid, {
          state: current.state.state,
          ...(current.state.message === undefined ? {} : { message: current.state.message }),
          resources: asReceived,
          updatedAt: nowNs(),
        }),
      );
    });
    this.deps.log.info({ sandboxId: sid }, 'pod sandbox resources updated');
  }

  // --- recovery ------------------------------------------------------------------------------

  /** Whether recovery has yet to check this pod (its record is from before this start). */
  isUnchecked(id: string): boolean {
    return this.unchecked.has(id);
  }

  /**
   * After the containers' recovery: every pod recorded before this start is checked, a few at a
   * time, each within `timeoutMs`. A RunPodSandbox cut short is rolled back step by step from its
   * intent (CNI DEL even without a cache entry once the ADD may have begun); a stop or removal
   * cut short is finished; a ready pod whose network namespace is gone (a node restart) becomes
   * NOTREADY, as one whose infra container ended already reports.
   */
  async recover(timeoutMs: number): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    await mapLimit([...this.unchecked], 4, async (sid) => {
      let outcome: string;
      try {
        outcome = await within(
          timeoutMs,
          this.recoverOne(sid),
          () => new DeadlineExceededError(`recovery of pod sandbox ${sid} took more than ${timeoutMs} ms`),
        );
        this.unchecked.delete(sid);
        if (outcome !== 'unchanged') this.deps.log.info({ sandboxId: sid, outcome }, 'pod sandbox recovered');
      } catch (err) {
        outcome = 'failed';
        this.deps.log.error(
          { sandboxId: sid, err },
          'could not recover the pod sandbox; it is reported as recorded',
        );
      }
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
    });
    return counts;
  }

  private async recoverOne(sid: string): Promise<string> {
    const sandbox = this.deps.store.getSandbox(sid);
    if (!sandbox) return 'unchanged';
    const intents = this.journal.forTarget(sid);
    const run = intents.find((i) => i.op === 'run-pod');
    if (intents.some((i) => i.op === 'remove-pod')) {
      await this.remove(sid);
      return 'removed';
    }
    if (run || sandbox.state.state === 'creating') {
      const step = run?.step ?? 'unknown';
      this.deps.log.warn({ sandboxId: sid, step }, 'rolling back a RunPodSandbox cut short by a crash');
      const network = this.deps.network;
      // Past 'recorded' the ADD may have begun (a DEL that finds nothing to undo is harmless).
      if (network && !sandbox.config.hostNetwork && sandbox.config.netnsPath !== '' && step !== 'recorded') {
        // The ADD may have run without its cache entry being written: DEL with the network config.
        await network.del(networkRef(sandbox.config));
      }
      await this.remove(sid);
      return 'rolled-back';
    }
    if (intents.some((i) => i.op === 'stop-pod')) {
      await this.stop(sid);
      return 'stopped';
    }
    if (sandbox.state.state === 'ready' && !sandbox.config.hostNetwork && sandbox.config.netnsPath !== '') {
      if (!(await this.deps.netns.exists(sandbox.config.netnsPath))) {
        await this.locks.run(`pod:${sid}`, () =>
          this.setState(
            sid,
            'notready',
            'its network namespace is gone (the node restarted?): kubelet creates the pod again',
          ),
        );
        return 'netns-gone';
      }
    }
    return 'unchanged';
  }

  // --- stop and remove -------------------------------------------------------------------------

  /**
   * Stops every container of the pod, then the infra container, then detaches its network.
   * Idempotent, and works when the infra container or the network namespace vanished on their
   * own. The stop is journalled, so a crash part-way is finished by recovery.
   */
  async stop(id: string): Promise<void> {
    const sandbox = this.find(id);
    if (!sandbox) return;
    const sid = sandbox.config.id;
    await this.locks.run(`pod:${sid}`, () => this.stopLocked(sid));
  }

  private async stopLocked(sid: string): Promise<void> {
    const sandbox = this.deps.store.getSandbox(sid);
    if (!sandbox) return;
    const mine = this.deps.containers.list().filter((c) => c.config.sandboxId === sid);
    const network = this.deps.network;
    const attached =
      network !== undefined &&
      !sandbox.config.hostNetwork &&
      sandbox.config.netnsPath !== '' &&
      (await network.cached(sid)) !== undefined;
    const leftover = this.journal.forTarget(sid, 'stop-pod');
    const busy = mine.some((c) => isActive(c.state.state) || c.state.state === 'stopped');
    if (!busy && !attached && sandbox.state.state !== 'ready' && leftover.length === 0) {
      // Already stopped: nothing to do, nothing to write.
      if (sandbox.state.state === 'creating') await this.setState(sid, 'notready');
      return;
    }
    const intent = leftover[0]
      ? this.journal.adopt(leftover[0])
      : await this.journal.begin('stop-pod', sid, 'containers');
    const apps = mine.filter((c) => c.config.kind === 'app');
    const obs = this.deps.observer;
    await timed(obs, 'stop_containers', () =>
      Promise.all(apps.map((c) => this.deps.containers.stop(c.config.id, 0))),
    );
    const infra = this.infraOf(sid);
    if (infra) await timed(obs, 'stop_infra', () => this.deps.containers.stop(infra.config.id, 0));
    failpoint('stop-pod:after-containers');
    // NOTREADY either way; a failed DEL fails the call, and kubelet's retry (or the removal)
    // runs it again. The attachment record exists from a successful ADD until a successful
    // DEL (a failed ADD undoes itself), so without one there is nothing left to tear down.
    await this.deps.store.commit(
      intent.advanceIn(
        new StoreBatch().putSandboxState(sid, { state: 'notready', updatedAt: nowNs() }),
        'cni-del',
      ),
    );
    if (attached) {
      await timed(obs, 'cni_del', () => network.del(networkRef(sandbox.config)));
      failpoint('stop-pod:after-cni-del');
    }
    await intent.done();
  }

  private async setState(id: string, state: SandboxState, message?: string): Promise<void> {
    const current = this.deps.store.getSandbox(id);
    if (!current || current.state.state === state) return;
    await this.deps.store.commit(
      new StoreBatch().putSandboxState(id, {
        state,
        ...(message === undefined ? {} : { message }),
        updatedAt: nowNs(),
      }),
    );
  }

  /** Removes the pod and everything in it; idempotent for unknown ids. */
  async remove(id: string): Promise<void> {
    const sandbox = this.find(id);
    if (!sandbox) return;
    const sid = sandbox.config.id;
    await this.stop(sid);
    await this.locks.run(`pod:${sid}`, async () => {
      if (!this.deps.store.getSandbox(sid)) return;
      if (this.journal.forTarget(sid, 'remove-pod').length === 0) {
        await this.journal.begin('remove-pod', sid, 'containers');
      }
      const mine = this.deps.containers.list().filter((c) => c.config.sandboxId === sid);
      // Application containers first, the infra container last.
      mine.sort((a, b) => (a.config.kind === 'infra' ? 1 : 0) - (b.config.kind === 'infra' ? 1 : 0));
      for (const c of mine) await this.deps.containers.remove(c.config.id);
      failpoint('remove-pod:after-containers');
      if (sandbox.config.netnsPath !== '') await this.deps.netns.remove(sandbox.config.netnsPath);
      failpoint('remove-pod:after-netns');
      await this.deps.podFiles.remove(sid);
      const nameKey = this.deps.store.listNames().find((n) => n.kind === 'sandbox' && n.id === sid)?.name;
      const batch = new StoreBatch().delSandbox(sid);
      if (nameKey !== undefined) batch.delName(nameKey);
      for (const intent of this.journal.forTarget(sid)) batch.delIntent(intent.id);
      await this.deps.store.commit(batch);
      this.unchecked.delete(sid);
    });
    this.deps.log.info({ sandboxId: sid }, 'pod sandbox removed');
  }
}
