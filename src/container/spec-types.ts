/**
 * The inputs of the OCI spec builder (spec.ts) and the subset of the OCI runtime spec it emits.
 *
 * The inputs are domain types, free of CRI proto types: the CRI layer converts a ContainerConfig
 * into a ContainerSpecInput, and the sandbox engine provides the PodContext (container/ defines
 * it, sandbox/ fills it in, so the dependency runs one way). Proto "unset" values (0, '', empty
 * lists) stay as they are unless a field below says otherwise.
 *
 * What each field becomes in config.json follows /work/shared/notes/oci-runtime-spec-for-cri.md
 * (containerd 1.7's choices unless docs/architecture.md says why crisp differs).
 */
import type { ImageRunConfig } from '../image/types.js';
import type { IdMaps } from './rootfs.js';

// --- inputs --------------------------------------------------------------------------------------

/** The image a container (or the infra container) runs. */
export interface ImageInput {
  /** The image id (`sha256:<hex>` of the config). */
  id: string;
  /** The image as the user named it (ContainerConfig.image.image); becomes the image-name annotation. */
  ref: string;
  /** The image config's run settings: Entrypoint/Cmd, Env, User, WorkingDir, ... */
  run: ImageRunConfig;
}

/** An environment variable from ContainerConfig.envs. */
export interface EnvVar {
  key: string;
  value: string;
}

/** How mounts below a bind mount propagate (CRI MountPropagation). */
export type MountPropagation = 'private' | 'host-to-container' | 'bidirectional';

/** A CRI Mount: a host path bound into the container. */
export interface MountInput {
  /** Absolute path inside the container. */
  containerPath: string;
  /**
   * Absolute host path. The caller resolves symlinks and creates a missing directory before
   * building the spec (containerd does both); the builder is pure and uses it as given.
   */
  hostPath: string;
  readonly: boolean;
  /** private → rprivate; host-to-container → rslave; bidirectional → rshared. */
  propagation: MountPropagation;
  /** More mount options (image volumes: nosuid, nodev, noexec). */
  extraOptions?: readonly string[];
  /**
   * Read-only with every mount below it (CRI recursive_read_only, with readonly). Not in the
   * spec (runc 1.1 has no rro): the container engine applies it between create and start.
   */
  recursiveReadOnly?: boolean;
  /**
   * Id-mapped through these maps (kubelet sets the pod's user namespace maps on a volume of such a
   * pod): the container engine mounts it so and binds that in instead of hostPath.
   */
  idmap?: IdMaps;
}

/** A CRI Device: a host device node (or a directory of them) for the container, see devices.ts. */
export interface DeviceInput {
  containerPath: string;
  hostPath: string;
  /** Cgroup permissions, some of `rwm`. */
  permissions: string;
}

/** CRI LinuxContainerResources, the fields crisp applies; 0 or '' means unset. */
export interface ContainerResourcesInput {
  /** cpu.shares (relative weight); 0 = unset. */
  cpuShares?: number;
  /** CFS quota in microseconds per period; 0 = unset. */
  cpuQuota?: number;
  /** CFS period in microseconds; 0 = unset. */
  cpuPeriod?: number;
  /** Memory limit in bytes; 0 = unset. */
  memoryLimitBytes?: number;
  /** Memory + swap limit in bytes; 0 = unset (then swap is capped at the memory limit if the host can). */
  memorySwapLimitBytes?: number;
  /** oom_score_adj for the container's processes (-1000..1000); unset = 0. */
  oomScoreAdj?: number;
  /** cpuset.cpus, e.g. "0-3,6"; '' = unset. */
  cpusetCpus?: string;
  /** cpuset.mems; '' = unset. */
  cpusetMems?: string;
  /** Huge page limits by page size ("2MB"); kubelet sends every size the node has, 0 if unrequested. */
  hugepageLimits?: readonly { pageSize: string; limit: number }[];
  /** cgroup v2 files and values (e.g. memory.high); refused on cgroup v1. */
  unified?: Readonly<Record<string, string>>;
}

/** CRI NamespaceMode for the PID namespace. */
export type PidNamespaceMode = 'pod' | 'container' | 'node' | 'target';

/** CRI NamespaceOption for a container. Network and IPC always follow the pod (PodContext). */
export interface ContainerNamespacesInput {
  /**
   * container: a new PID namespace (kubelet's default); pod: the infra container's
   * (shareProcessNamespace); node: the host's; target: another container's (ephemeral debug
   * containers), whose pid the caller passes as `ContainerSpecResolved.targetPid`.
   */
  pid: PidNamespaceMode;
  /** The target container's id when pid is 'target'. */
  targetId?: string;
}

/** CRI LinuxContainerSecurityContext, the fields crisp applies. */
export interface ContainerSecurityInput {
  runAsUser?: number;
  /** Only together with runAsUser or runAsUsername. */
  runAsGroup?: number;
  /** Looked up in the container's /etc/passwd; wins over runAsUser. */
  runAsUsername?: string;
  supplementalGroups?: readonly number[];
  readonlyRootfs?: boolean;
  /** All capabilities, no masked paths, rw /sys; needs a privileged pod. */
  privileged?: boolean;
  noNewPrivs?: boolean;
  /** Capability names with or without `CAP_`, any case; `ALL` means every capability. */
  capabilities?: { add: readonly string[]; drop: readonly string[] };
  /** Used verbatim when given (an empty list masks nothing); undefined → crisp's defaults. */
  maskedPaths?: readonly string[];
  /** Used verbatim when given; undefined → crisp's defaults. */
  readonlyPaths?: readonly string[];
  /** Undefined = { pid: 'container' }. */
  namespaces?: ContainerNamespacesInput;
  /** Undefined = unconfined (containerd's and CRI-O's behaviour for an unset field). */
  seccomp?: SeccompInput;
  /** CRI AppArmor SecurityProfile (or the deprecated apparmor_profile); undefined = the default. */
  apparmor?: AppArmorInput;
}

/** CRI AppArmor profile: the runtime's default, none, or a profile loaded on the node by name. */
export interface AppArmorInput {
  profileType: 'runtime-default' | 'unconfined' | 'localhost';
  /** The loaded profile's name, for localhost. */
  name?: string;
  /** The request field it came from, named in errors. */
  field: string;
}

/** CRI seccomp SecurityProfile (or the deprecated seccomp_profile_path), see seccomp.ts. */
export interface SeccompInput {
  profileType: 'unconfined' | 'runtime-default' | 'localhost';
  /** The absolute host path of the profile file, for 'localhost'. */
  localhostRef?: string;
  /** The request field localhostRef came from, named in errors (default: seccomp.localhost_ref). */
  field?: string;
}

/** Everything the spec builder needs from a CreateContainer request. */
export interface ContainerSpecInput {
  /** The container id (64 hex). */
  id: string;
  /** ContainerConfig.metadata.name. */
  name: string;
  sandboxId: string;
  image: ImageInput;
  /** ContainerConfig.command (overrides the image Entrypoint when non-empty). */
  command: readonly string[];
  /** ContainerConfig.args (overrides the image Cmd when non-empty). */
  args: readonly string[];
  /** ContainerConfig.working_dir; '' = the image's, else '/'. */
  workingDir: string;
  envs: readonly EnvVar[];
  mounts: readonly MountInput[];
  devices: readonly DeviceInput[];
  /** Kept by the container engine; not written to config.json. */
  labels: Readonly<Record<string, string>>;
  /** Written to config.json, under crisp's io.kubernetes.cri.* annotations. */
  annotations: Readonly<Record<string, string>>;
  /** Allocate a terminal (process.terminal). */
  tty: boolean;
  /** stdin/stdinOnce concern conmon, not config.json; carried for the engine. */
  stdin: boolean;
  stdinOnce: boolean;
  linux: {
    resources?: ContainerResourcesInput;
    securityContext?: ContainerSecurityInput;
  };
}

/**
 * What the sandbox engine knows about a pod before its infra (pause) process exists. The infra
 * spec needs only this; app containers need the PodContext, which adds the infra pid.
 */
export interface InfraPodContext {
  sandboxId: string;
  /** PodSandboxConfig.metadata name, namespace and uid (for annotations). */
  sandboxName: string;
  sandboxNamespace: string;
  sandboxUid: string;
  /**
   * The pod's hostname: the infra container's UTS hostname and app containers' HOSTNAME env.
   * For host-network pods the infra spec sets no hostname (the pod shares the node's UTS
   * namespace), so the sandbox engine may put the node's hostname here, as containerd does for
   * HOSTNAME; '' = no HOSTNAME env.
   */
  hostname: string;
  /** The pinned network namespace (e.g. /run/crisp/netns/<name>); undefined for host network. */
  netnsPath: string | undefined;
  hostNetwork: boolean;
  hostIpc: boolean;
  hostPid: boolean;
  /** The pod's security_context.privileged: its containers may then be privileged. */
  privileged: boolean;
  /** PodSandboxConfig.linux.cgroup_parent: a path (cgroupfs) or a slice name (systemd); '' = none. */
  cgroupParent: string;
  /** kubelet's cgroupDriver, which crisp must match. */
  cgroupDriver: 'cgroupfs' | 'systemd';
  /** Host files bound into containers; '' = do not bind that file. */
  resolvConfPath: string;
  hostsPath: string;
  hostnamePath: string;
  /** The sandbox's shm directory (a tmpfs); ignored with hostIpc, where the host's /dev/shm is used. */
  shmPath: string;
  /** kubelet's log_directory for the pod ('' when unset); an annotation on the infra spec. */
  logDirectory: string;
  /**
   * The pod's user namespace maps (userns_options mode POD); undefined = the host's namespace.
   * The infra container creates the namespace, with a new network namespace owned by it (crisp
   * pins that one afterwards); app containers join both.
   */
  userns?: { uids: readonly OciIdMapping[]; gids: readonly OciIdMapping[] };
}

/** The pod as app containers see it: the infra process's namespaces are theirs to join. */
export interface PodContext extends InfraPodContext {
  /** The pid of the infra (pause) process; app containers join its ipc/uts (and pid for 'pod'). */
  infraPid: number;
}

/** Pod-level resources (PodSandboxConfig.linux.resources); recorded as annotations only. */
export interface PodResourcesInput {
  cpuPeriod?: number;
  cpuQuota?: number;
  cpuShares?: number;
  memoryLimitBytes?: number;
}

/** Everything the spec builder needs for a pod's infra (pause) container. */
export interface InfraSpecInput {
  /** The pause image; its Entrypoint + Cmd are the process args. */
  image: ImageInput;
  pod: InfraPodContext;
  /** PodSandboxConfig.linux.sysctls. */
  sysctls: Readonly<Record<string, string>>;
  /** Defaults to -998 (containerd's), so the pause process is the last to be OOM-killed. */
  oomScoreAdj?: number;
  /** The PodSandboxConfig annotations; crisp's io.kubernetes.cri.* annotations win over them. */
  annotations: Readonly<Record<string, string>>;
  resources?: PodResourcesInput;
}

/** The process's credentials, as resolved by user.ts. */
export interface ProcessUser {
  uid: number;
  gid: number;
  /** Supplementary groups, the primary gid first. */
  additionalGids: number[];
}

/** Facts the caller resolves with I/O before the (pure) builder runs. */
export interface InfraSpecResolved {
  /** The mounted root filesystem. */
  rootfsPath: string;
  user: ProcessUser;
  /**
   * When set, a requested oom_score_adj below it is raised to it: a process without
   * CAP_SYS_RESOURCE cannot lower its children's score below its own.
   */
  oomScoreAdjFloor?: number;
}

/**
 * What the node's cgroups can do and crisp's settings for them (cgroup-host.ts reads the facts),
 * used for an app container's resources at create and at update.
 */
export interface ResourceFacts {
  /** The host runs cgroup v2: containers get a new cgroup namespace unless privileged. */
  cgroupV2?: boolean;
  /** The memory controller accounts swap: the swap limit is then set to the memory limit. */
  swapControllerAvailable?: boolean;
  /** runc can set hugetlb limits here; undefined = assume it can. */
  hugetlbControllerAvailable?: boolean;
  /**
   * Without a hugetlb controller, drop hugepage limits (true, the default, as containerd's
   * tolerate_missing_hugetlb_controller) or refuse them (false).
   */
  tolerateMissingHugetlbController?: boolean;
  /** The page sizes the kernel offers ("2MB", "1GB"); undefined = not checked. */
  hugepageSizes?: readonly string[];
  /** crisp.toml pids_limit: the most processes (tasks) one container may have; 0 or -1 = no limit. */
  pidsLimit?: number;
}

export interface ContainerSpecResolved extends InfraSpecResolved, ResourceFacts {
  /** The pid of the target container's process, required when namespaces.pid is 'target'. */
  targetPid?: number;
  /** The seccomp filter (seccomp.ts resolveSeccomp); undefined = none (linux.seccomp absent). */
  seccomp?: OciSeccomp;
  /** Whether the node runs AppArmor (a localhost profile can only be applied then). */
  apparmorEnabled?: boolean;
  /**
   * Device nodes to create in the container (devices.ts): the CRI devices, plus the host's
   * devices for a privileged container; each is allowed in the device cgroup with its access.
   */
  devices?: readonly (OciDevice & { access: string })[];
}

// --- output: the subset of the OCI runtime spec (1.0.2) crisp writes -----------------------------

export interface OciUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

export interface OciCapabilities {
  bounding: string[];
  effective: string[];
  permitted: string[];
}

export interface OciProcess {
  terminal: boolean;
  user: OciUser;
  args: string[];
  env: string[];
  cwd: string;
  capabilities: OciCapabilities;
  noNewPrivileges: boolean;
  oomScoreAdj: number;
  apparmorProfile?: string;
}

export interface OciRoot {
  path: string;
  readonly: boolean;
}

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export type OciNamespaceType = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup';

export interface OciNamespace {
  type: OciNamespaceType;
  /** Join this namespace; absent = create a new one. */
  path?: string;
}

export interface OciDeviceCgroup {
  allow: boolean;
  type?: 'a' | 'c' | 'b';
  major?: number;
  minor?: number;
  access?: string;
}

/** OCI `linux.devices`: a device node runc creates in the container. */
export interface OciDevice {
  path: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

export interface OciResources {
  devices: OciDeviceCgroup[];
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  memory?: { limit?: number; swap?: number };
  pids?: { limit: number };
  hugepageLimits?: { pageSize: string; limit: number }[];
  unified?: Record<string, string>;
}

export interface OciSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface OciSeccompSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: OciSeccompArg[];
}

/** OCI `linux.seccomp`. */
export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls?: OciSeccompSyscall[];
}

/** OCI LinuxIDMapping. */
export interface OciIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface OciLinux {
  namespaces: OciNamespace[];
  uidMappings?: OciIdMapping[];
  gidMappings?: OciIdMapping[];
  resources: OciResources;
  cgroupsPath: string;
  maskedPaths: string[];
  readonlyPaths: string[];
  rootfsPropagation?: 'rslave' | 'rshared';
  devices?: OciDevice[];
  sysctl?: Record<string, string>;
  seccomp?: OciSeccomp;
}

/** config.json as crisp writes it. */
export interface OciSpec {
  ociVersion: string;
  process: OciProcess;
  root: OciRoot;
  hostname?: string;
  mounts: OciMount[];
  annotations: Record<string, string>;
  linux: OciLinux;
}
