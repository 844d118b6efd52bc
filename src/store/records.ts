/**
 * The records crisp keeps in its state database, one zod schema per record kind. The schemas are the
 * single source of truth: the TypeScript types are inferred from them, every value is checked against
 * them when it is written (so a bad record never reaches the disk) and when it is loaded at start (so
 * a damaged one is reported instead of crashing an engine later).
 *
 * Every value carries `v`, the version of its own shape. To change a shape incompatibly, bump its
 * entry in `recordVersions`, change the schema and add an upgrade in `decodeRecord`; additive optional
 * fields need no bump. A record whose `v` is newer than this code knows refuses the start.
 *
 * Timestamps are nanoseconds since the Unix epoch as decimal strings (they exceed 2^53).
 */
import { z } from 'zod';

/** The kinds of record, one LevelDB key each; a sandbox or container is two of them (config, state). */
export type TableName =
  'sandboxConfig' | 'sandboxState' | 'containerConfig' | 'containerState' | 'image' | 'name' | 'intent';

/** The current shape version of each record kind, stamped into `v` on every write. */
export const recordVersions = {
  sandboxConfig: 1,
  sandboxState: 1,
  containerConfig: 1,
  containerState: 1,
  image: 1,
  name: 1,
  intent: 1,
} as const satisfies Record<TableName, number>;

const nanos = z
  .string()
  .regex(/^(0|[1-9][0-9]*)$/, 'expected nanoseconds since the epoch as a decimal string');
/** Ids become key prefixes (`<id>/config`), so they may not contain '/'. */
const recordId = z
  .string()
  .min(1)
  .regex(/^[^/]+$/, "must not contain '/'");
const stringMap = z.record(z.string(), z.string()).readonly();
const int = z.number().int();

const jsonValue = z.json();

/** Any JSON value (what an intent carries in `data`). */
export type JsonValue = z.output<typeof jsonValue>;

const idMapping = z
  .object({ containerId: int.nonnegative(), hostId: int.nonnegative(), size: int.positive() })
  .readonly();
/** A user namespace's uid and gid maps (OCI LinuxIDMapping ranges). */
const idMaps = z
  .object({ uids: z.array(idMapping).readonly(), gids: z.array(idMapping).readonly() })
  .readonly();

// --- sandboxes -----------------------------------------------------------------------------------

export const sandboxStates = ['creating', 'ready', 'notready', 'removed'] as const;
export type SandboxState = (typeof sandboxStates)[number];

/** Written once, when the sandbox is created. */
export const sandboxConfigSchema = z
  .object({
    v: z.literal(recordVersions.sandboxConfig),
    id: recordId,
    /** metadata.name, namespace, uid and attempt from the PodSandboxConfig. */
    name: z.string(),
    namespace: z.string(),
    uid: z.string(),
    attempt: int.nonnegative(),
    labels: stringMap,
    annotations: stringMap,
    /** The CRI runtime handler ('' for the default). */
    runtimeHandler: z.string(),
    hostname: z.string(),
    /** kubelet's log_directory for the pod ('' when unset). */
    logDirectory: z.string(),
    hostNetwork: z.boolean(),
    hostPid: z.boolean(),
    hostIpc: z.boolean(),
    /** security_context.privileged: the pod's containers may be privileged. */
    privileged: z.boolean(),
    /** The pinned network namespace ('' for the host's). */
    netnsPath: z.string(),
    cgroupParent: z.string(),
    /** The pod's user namespace maps (userns_options mode POD); absent = the host's namespace. */
    userns: idMaps.optional(),
    /** The pod's IPs from CNI ADD, IPv4 first; absent for host network or without CNI. */
    ips: z.array(z.string()).readonly().optional(),
    /** Port mappings with a host port (CNI portmap), to refuse a second pod on the same one. */
    portMappings: z
      .array(
        z
          .object({
            hostPort: int,
            containerPort: int,
            protocol: z.enum(['tcp', 'udp', 'sctp']),
            hostIP: z.string(),
          })
          .readonly(),
      )
      .readonly()
      .optional(),
    /** The PodSandboxConfig as received (JSON), for status and later features. */
    criConfig: jsonValue,
    createdAt: nanos,
  })
  .readonly();
export type SandboxConfigRecord = z.output<typeof sandboxConfigSchema>;

/** Rewritten on every transition. */
export const sandboxStateSchema = z
  .object({
    v: z.literal(recordVersions.sandboxState),
    state: z.enum(sandboxStates),
    /** What went wrong last, for the operator (e.g. a stop that failed part-way). */
    message: z.string().optional(),
    /** The last UpdatePodSandboxResources request's resources and overhead, as received. */
    resources: jsonValue.optional(),
    updatedAt: nanos,
  })
  .readonly();
export type SandboxStateRecord = z.output<typeof sandboxStateSchema>;

// --- containers ----------------------------------------------------------------------------------

/** The libpod states; docs/state-machine.md has the transitions and the CRI mapping. */
export const containerStates = [
  'configured',
  'created',
  'running',
  'paused',
  'stopped',
  'exited',
  'removing',
  'unknown',
] as const;
export type ContainerState = (typeof containerStates)[number];

/** Written once, when the container is created. */
export const containerConfigSchema = z
  .object({
    v: z.literal(recordVersions.containerConfig),
    id: recordId,
    sandboxId: recordId,
    /** The pod's infra (pause) container, or an application container. */
    kind: z.enum(['infra', 'app']),
    /** metadata.name and attempt from the ContainerConfig. */
    name: z.string(),
    attempt: int.nonnegative(),
    /** The image as the kubelet asked for it, and the image id (digest) it resolved to. */
    image: z.string(),
    imageRef: z.string(),
    labels: stringMap,
    annotations: stringMap,
    /** Absolute path of the CRI log file ('' for none). */
    logPath: z.string(),
    mounts: z
      .array(
        z
          .object({
            containerPath: z.string(),
            hostPath: z.string(),
            readonly: z.boolean(),
            propagation: z.enum(['private', 'host-to-container', 'bidirectional']),
            /** Read-only with every mount below it (CRI recursive_read_only). */
            recursiveReadOnly: z.boolean().optional(),
            /** Id-mapped through these maps (a volume of a user-namespaced pod). */
            idmap: idMaps.optional(),
          })
          .readonly(),
      )
      .readonly(),
    /** Image ids mounted read-only as image volumes (CRI Mount.image), by volume index. */
    imageVolumes: z.array(z.string()).readonly().optional(),
    /** The pod's user namespace maps, for a container whose root is id-mapped into it. */
    idmap: idMaps.optional(),
    tty: z.boolean(),
    stdin: z.boolean(),
    stdinOnce: z.boolean(),
    /** The signal StopContainer sends first (from the image, else SIGTERM). */
    stopSignal: z.string(),
    /** The ContainerConfig as received (JSON), for status and later features. */
    criConfig: jsonValue,
    createdAt: nanos,
  })
  .readonly();
export type ContainerConfigRecord = z.output<typeof containerConfigSchema>;

/** Rewritten on every transition. */
export const containerStateSchema = z
  .object({
    v: z.literal(recordVersions.containerState),
    state: z.enum(containerStates),
    /** The container's init process, while it has one. */
    pid: int.positive().optional(),
    /** Its conmon monitor. */
    conmonPid: int.positive().optional(),
    /** The CRI LinuxContainerResources last applied by UpdateContainerResources (proto JSON). */
    resources: jsonValue.optional(),
    /** The ids the process runs with, as resolved at create (ContainerStatus.user). */
    user: z
      .object({
        uid: int.nonnegative(),
        gid: int.nonnegative(),
        supplementalGroups: z.array(int.nonnegative()).readonly(),
      })
      .readonly()
      .optional(),
    startedAt: nanos.optional(),
    finishedAt: nanos.optional(),
    exitCode: int.optional(),
    /** Why it finished, e.g. 'OOMKilled', 'Completed', 'Error'. */
    reason: z.string().optional(),
    message: z.string().optional(),
    updatedAt: nanos,
  })
  .readonly();
export type ContainerStateRecord = z.output<typeof containerStateSchema>;

// --- images, names, intents ----------------------------------------------------------------------

const digest = z
  .string()
  .regex(/^sha(256:[0-9a-f]{64}|512:[0-9a-f]{128})$/, 'expected a sha256/sha512 digest');

/** One layer of an image: the blob as pulled and the unpacked tar it must hash to. */
const imageLayerSchema = z
  .object({
    digest,
    diffId: digest,
    mediaType: z.string(),
    size: int.nonnegative(),
  })
  .readonly();

/** What the image config says about running it. */
const imageRunSchema = z
  .object({
    user: z.string(),
    env: z.array(z.string()).readonly(),
    entrypoint: z.array(z.string()).readonly(),
    cmd: z.array(z.string()).readonly(),
    workingDir: z.string(),
    stopSignal: z.string(),
    volumes: z.array(z.string()).readonly(),
    exposedPorts: z.array(z.string()).readonly(),
    labels: stringMap,
  })
  .readonly();

export const imageSchema = z
  .object({
    v: z.literal(recordVersions.image),
    /** The image id: the config digest, `sha256:<hex>`. */
    id: recordId,
    /** Fully qualified tags, e.g. docker.io/library/busybox:latest. */
    repoTags: z.array(z.string()).readonly(),
    /** name@digest of the manifest (or index) each pull resolved. */
    repoDigests: z.array(z.string()).readonly(),
    /** Bytes, as a decimal string (uint64 in the CRI): config plus compressed layers. */
    size: z.string().regex(/^(0|[1-9][0-9]*)$/, 'expected a decimal byte count'),
    /** Base layer first. */
    layers: z.array(imageLayerSchema).readonly(),
    /** Blobs this image holds in the content store besides layers: config, manifests, indexes. */
    blobs: z.array(digest).readonly(),
    run: imageRunSchema,
    os: z.string(),
    architecture: z.string(),
    /** Never garbage-collected by kubelet (the pause image). */
    pinned: z.boolean(),
    createdAt: nanos,
  })
  .readonly();
export type ImageRecord = z.output<typeof imageSchema>;

/** A reserved name (the key) and who holds it. */
export const nameSchema = z
  .object({
    v: z.literal(recordVersions.name),
    name: z.string().min(1),
    kind: z.enum(['sandbox', 'container']),
    id: recordId,
  })
  .readonly();
export type NameRecord = z.output<typeof nameSchema>;

/** A side effect in flight, written before it starts and deleted when it is done or undone. */
export const intentSchema = z
  .object({
    v: z.literal(recordVersions.intent),
    id: recordId,
    /** What is being done, e.g. 'create-container'. */
    op: z.string().min(1),
    /** The id of the object it is done to. */
    target: z.string(),
    /** How far it got, e.g. 'rootfs-mounted'. */
    step: z.string(),
    data: jsonValue,
    createdAt: nanos,
  })
  .readonly();
export type IntentRecord = z.output<typeof intentSchema>;

// --- by table ------------------------------------------------------------------------------------

export interface TableRecords {
  sandboxConfig: SandboxConfigRecord;
  sandboxState: SandboxStateRecord;
  containerConfig: ContainerConfigRecord;
  containerState: ContainerStateRecord;
  image: ImageRecord;
  name: NameRecord;
  intent: IntentRecord;
}

/** What a caller passes to write a record: the record without `v`, which the store stamps. */
export type RecordInput<T extends TableName> = Omit<TableRecords[T], 'v'>;

export const recordSchemas: { readonly [T in TableName]: z.ZodType<TableRecords[T]> } = {
  sandboxConfig: sandboxConfigSchema,
  sandboxState: sandboxStateSchema,
  containerConfig: containerConfigSchema,
  containerState: containerStateSchema,
  image: imageSchema,
  name: nameSchema,
  intent: intentSchema,
};

/** Why a stored value could not be decoded; `tooNew` means a newer crisp wrote it. */
export class RecordDecodeError extends Error {
  constructor(
    message: string,
    readonly tooNew: boolean,
  ) {
    super(message);
    this.name = 'RecordDecodeError';
  }
}

/**
 * Turns a value read from disk into a current record, or throws RecordDecodeError. Upgrades of
 * older shapes go here, keyed on `v`, once a kind's version is first bumped.
 */
export function decodeRecord<T extends TableName>(table: T, raw: unknown): TableRecords[T] {
  const version = typeof raw === 'object' && raw !== null && 'v' in raw ? raw.v : undefined;
  if (typeof version !== 'number' || !Number.isInteger(version)) {
    throw new RecordDecodeError('missing or malformed record version "v"', false);
  }
  const current = recordVersions[table];
  if (version > current) {
    throw new RecordDecodeError(
      `record version ${version} is newer than this crisp knows (${current}): it was written by a newer crisp`,
      true,
    );
  }
  if (version < current) {
    throw new RecordDecodeError(`no upgrade from record version ${version} to ${current}`, false);
  }
  const parsed = recordSchemas[table].safeParse(raw);
  if (!parsed.success) throw new RecordDecodeError(describeIssues(parsed.error), false);
  return parsed.data;
}

/** `field: problem; field: problem` from a zod error, short enough for a log line. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(value)'}: ${issue.message}`)
    .join('; ');
}
