/**
 * The container engine: libpod's lifecycle (init, start, stop, kill, cleanup, sync, remove)
 * over conmon and runc, for application containers and for pods' infra containers alike.
 *
 * Rules it keeps (docs/state-machine.md):
 * - every transition is written to the store before the caller hears of it;
 * - operations on one container are serialised by its lock; different containers never wait
 *   for each other; stop releases the lock while it waits out the grace period;
 * - an operation a state does not allow fails with FAILED_PRECONDITION naming the state;
 * - exits are learnt from conmon's exit file (watched, and checked again on reads).
 */
import { randomBytes } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { access, chmod, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  AlreadyExistsError,
  CommandError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../errors.js';
import type { ImageService, StoredImage } from '../image/service.js';
import type { Logger } from '../log/logger.js';
import {
  createContainer,
  execSync,
  readExitFile,
  hasOomFile,
  reopenLog,
  resizeTerminal,
} from '../oci/conmon.js';
import { execAttach, type ExecSession } from '../oci/conmon-exec.js';
import { attachSocket, type AttachedStreams } from '../oci/attach-relay.js';
import { Runc } from '../oci/runc.js';
import { StoreBatch } from '../store/batch.js';
import { IntentJournal, type Intent } from '../store/intents.js';
import { failpoint } from '../util/failpoint.js';
import { within } from '../util/deadline.js';
import { mapLimit } from '../util/map-limit.js';
import { bootTimeNs, processAlive, processArgv, processStartedAtNs } from '../util/proc.js';
import type {
  ContainerConfigRecord,
  ContainerStateRecord,
  JsonValue,
  RecordInput,
} from '../store/records.js';
import type { StateStore, StoredContainer } from '../store/state-store.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { CommandFailure, runCommand } from '../util/command.js';
import { isActive, requireState, type ContainerState } from './state.js';
import { containerResources } from './spec.js';
import type { ContainerResourcesInput, ResourceFacts } from './spec-types.js';
import { ContainerEventBus } from './events.js';
import {
  isMounted,
  mountIdmappedRootfs,
  mountImageVolume,
  mountRootfs,
  removeRootfsStorage,
  unmountIdmappedLayers,
  unmountImageVolumes,
  unmountRootfs,
  RRO_HELPER,
  idmapMount,
  idmappedVolumePath,
  type IdMaps,
} from './rootfs.js';
import { byIdOrPrefix } from '../store/id-prefix.js';

export type { StoredContainer } from '../store/state-store.js';
export type { ExecSession } from '../oci/conmon-exec.js';
export type { AttachedStreams } from '../oci/attach-relay.js';

/** What the engine needs to know about the runtime set-up (from crisp.toml). */
export interface ContainerEngineSettings {
  conmonPath: string;
  runtimes: Record<string, { path: string }>;
  defaultRuntime: string;
  /** runc --root for every container crisp runs. */
  runtimeRoot: string;
  systemdCgroup: boolean;
  bundlesDir: string;
  exitsDir: string;
  containersDir: string;
  attachDir: string;
  /** Scratch space for ExecSync process specs and logs. */
  execDir: string;
  /** What the node's cgroups can do, for resource updates (the same facts as at create). */
  resourceFacts?: ResourceFacts;
  /** The id-mapped mount helper (default: bin/crisp-idmap-mount). */
  idmapHelper?: string;
  /** The recursive read-only helper (default: bin/crisp-rro-mount). */
  rroHelper?: string;
}

/** What the daemon wants to hear about (it turns this into metrics). */
export interface ContainerObserver {
  /** Time spent in one stage of starting a pod or container. */
  stage(
    stage:
      | 'netns'
      | 'cni'
      | 'pod_files'
      | 'rootfs'
      | 'spec'
      | 'runtime_create'
      | 'runtime_start'
      | 'stop_containers'
      | 'stop_infra'
      | 'cni_del',
    seconds: number,
    /** Whose stage: the pod's own (netns, CNI, pod files, stopping), its infra or an app container. */
    kind: 'pod' | 'infra' | 'app',
  ): void;
  oomKilled(): void;
  /** How far a stop had to go. */
  stopEscalation(step: 'signal' | 'kill' | 'unstoppable'): void;
}

export interface ContainerEngineDeps {
  store: StateStore;
  images: ImageService;
  log: Logger;
  observer?: ContainerObserver;
  /** Where lifecycle events go (GetContainerEvents); the manager makes its own if not given. */
  events?: ContainerEventBus;
}

/** Runs `fn` and reports its duration as `stage`. */
export async function timed<T>(
  observer: ContainerObserver | undefined,
  stage: Parameters<ContainerObserver['stage']>[0],
  fn: () => Promise<T>,
  kind: Parameters<ContainerObserver['stage']>[2] = 'pod',
): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    observer?.stage(stage, (performance.now() - t0) / 1000, kind);
  }
}

/** Everything the spec builder gets to build config.json. */
export interface SpecContext {
  id: string;
  rootfs: string;
  image: StoredImage;
  /** The mounted image volumes (CreateRequest.imageVolumes), in the same order. */
  imageVolumes: string[];
  /** Where each id-mapped CRI mount (by its index in CreateRequest.mounts) is mounted. */
  idmappedMounts: ReadonlyMap<number, string>;
}

export interface CreateRequest {
  kind: 'infra' | 'app';
  sandboxId: string;
  name: string;
  attempt: number;
  /** Unique per Kubernetes metadata; a second create with it is ALREADY_EXISTS. */
  nameKey: string;
  /** The image as the caller named it (tag, digest or id). */
  image: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Absolute log path ('' for none). */
  logPath: string;
  mounts: ContainerConfigRecord['mounts'];
  tty: boolean;
  stdin: boolean;
  stdinOnce: boolean;
  runtimeHandler: string;
  criConfig: JsonValue;
  /** Builds config.json once the rootfs is mounted (the user is resolved inside it). */
  buildSpec: (ctx: SpecContext) => Promise<object>;
  /** For app containers: the pod's infra container must be running to start them. */
  infraContainerId?: string;
  /** The request's stop signal (CRI ContainerConfig.stop_signal); else the image's, else SIGTERM. */
  stopSignal?: string;
  /**
   * Images to mount read-only for the container (CRI Mount.image), by volume index; `field`
   * names the request field in errors. They must have been pulled.
   */
  imageVolumes?: readonly { image: string; field: string }[];
  /** The pod's user namespace maps: the container's root is then id-mapped into it. */
  idmap?: IdMaps;
}

export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

/** Output ExecSync returns per stream; more is cut off (kubelet probes read far less). */
export const EXEC_SYNC_OUTPUT_CAP = 16 * 1024 * 1024;
/** Extra time conmon gets after an ExecSync timeout before crisp kills it. */
const STOP_KILL_WAIT_MS = 10_000;
const EXIT_POLL_MS = 50;
/** How long SIGKILL may take before crisp checks whether the container's cgroup is frozen. */
const FROZEN_CHECK_AFTER_MS = 1_000;

/** The process ids an OCI spec runs with (spec.process.user), if it has them. */
function userOf(spec: object): { uid: number; gid: number; supplementalGroups: number[] } | undefined {
  const process = (
    spec as { process?: { user?: { uid?: unknown; gid?: unknown; additionalGids?: unknown } } }
  ).process;
  const u = process?.user;
  if (typeof u?.uid !== 'number' || typeof u.gid !== 'number') return undefined;
  const extra = Array.isArray(u.additionalGids)
    ? u.additionalGids.filter((g): g is number => typeof g === 'number')
    : [];
  return { uid: u.uid, gid: u.gid, supplementalGroups: extra };
}

/** runc's failure to exec the container's process (missing binary, not executable, bad cwd). */
function isProcessStartError(err: unknown): err is CommandError {
  return (
    err instanceof CommandError &&
    /unable to start container process|exec: |executable file not found|no such file or directory|permission denied/.test(
      err.message,
    )
  );
}

function nowNs(): string {
  return (BigInt(Date.now()) * 1_000_000n).toString();
}

function msToNs(ms: number): string {
  return (BigInt(Math.round(ms)) * 1_000_000n).toString();
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Containers checked at the same time during recovery. */
const RECOVERY_CONCURRENCY = 8;
/** How long recovery gives one container (its runc state, its files, a cleanup) by default. */
export const RECOVERY_TIMEOUT_MS = 10_000;
/** How often containers recovery could not check are tried again, and unmonitored ones looked at. */
const RECOVERY_RETRY_MS = 5_000;
/** How long a stopped container whose conmon still runs gets to have its exit file written. */
const EXIT_FILE_GRACE_MS = 2_000;
/** The exit code reported when the real one was lost (the node restarted, or conmon was gone). */
export const UNKNOWN_EXIT_CODE = 255;

/** What recovery found for one container. */
export type RecoveryOutcome =
  | 'running'
  | 'unmonitored'
  | 'exited-while-down'
  | 'exit-lost'
  | 'rolled-back'
  | 'removed'
  | 'cleaned'
  | 'unchanged'
  | 'failed';

export class ContainerManager {
  private readonly locks = new KeyedMutex();
  private watcher: FSWatcher | undefined;
  private readonly runcs = new Map<string, Runc>();
  private readonly journal: IntentJournal;
  /** Containers recorded before this start that recovery has not checked yet (reads answer from the record). */
  private readonly unchecked = new Set<string>();
  /** Live containers whose conmon is gone: their exit is noticed by watching the pid. */
  private readonly unmonitored = new Map<string, number>();
  private retryTimer: NodeJS.Timeout | undefined;
  /** Published right after each commit that a CRI client can see (events.ts). */
  readonly events: ContainerEventBus;

  constructor(
    private readonly deps: ContainerEngineDeps,
    private readonly settings: ContainerEngineSettings,
  ) {
    this.events = deps.events ?? new ContainerEventBus(deps.store);
    this.journal = new IntentJournal(deps.store);
  }

  // --- set-up --------------------------------------------------------------------------------

  async init(): Promise<void> {
    const s = this.settings;
    for (const dir of [s.exitsDir, s.containersDir, s.attachDir, s.execDir, s.runtimeRoot]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    }
    // Searchable, not listable: runc mounts a user-namespaced container's rootfs from inside its
    // namespace, whose root is an unprivileged host id. config.json stays 0600.
    await mkdir(s.bundlesDir, { recursive: true, mode: 0o711 });
    await chmod(s.bundlesDir, 0o711);
    this.watcher = watch(s.exitsDir, (_event, file) => {
      if (typeof file === 'string' && /^[0-9a-f]{64}$/.test(file)) {
        void this.syncLogged(file);
      }
    });
    this.watcher.on('error', (err) => {
      this.deps.log.error({ err }, 'exit directory watch failed; exits are still found on reads');
    });
    // Everything recorded so far is checked by recover(); until then reads answer from the record.
    for (const c of this.deps.store.listContainers()) this.unchecked.add(c.config.id);
  }

  close(): void {
    this.watcher?.close();
    clearTimeout(this.retryTimer);
  }

  /** Throws INVALID_ARGUMENT for a runtime handler crisp.toml does not define. */
  requireHandler(handler: string): void {
    this.runtimeFor(handler);
  }

  private runtimeFor(handler: string): { name: string; runc: Runc; path: string } {
    const name = handler === '' ? this.settings.defaultRuntime : handler;
    const rt = this.settings.runtimes[name];
    if (!rt) {
      const known = Object.keys(this.settings.runtimes).join(', ');
      throw new InvalidArgumentError(
        'runtime_handler',
        `unknown runtime handler "${handler}"; crisp.toml has: ${known}`,
      );
    }
    let runc = this.runcs.get(name);
    if (!runc) {
      runc = new Runc({
        path: rt.path,
        root: this.settings.runtimeRoot,
        systemdCgroup: this.settings.systemdCgroup,
        log: this.deps.log,
      });
      this.runcs.set(name, runc);
    }
    return { name, runc, path: rt.path };
  }

  bundleDir(id: string): string {
    return join(this.settings.bundlesDir, id);
  }

  private containerDir(id: string): string {
    return join(this.settings.containersDir, id);
  }

  private persistDir(id: string): string {
    return join(this.containerDir(id), 'userdata');
  }

  /** The container's writable layer: the overlay upper dir (kept until the container is removed). */
  upperDir(id: string): string {
    return join(this.containerDir(id), 'upper');
  }

  private rootfsDir(id: string): string {
    return join(this.bundleDir(id), 'rootfs');
  }

  // --- reads ---------------------------------------------------------------------------------

  get(id: string): StoredContainer {
    const found = this.find(id);
    if (!found) throw new NotFoundError('container', id);
    return found;
  }

  /** By full id or unique prefix; undefined if none. */
  find(idOrPrefix: string): StoredContainer | undefined {
    const { store } = this.deps;
    return byIdOrPrefix(
      idOrPrefix,
      store.getContainer(idOrPrefix),
      () => store.listContainers(),
      'container_id',
      'containers',
    );
  }

  list(): StoredContainer[] {
    return this.deps.store.listContainers();
  }

  /**
   * Picks up an exit the watcher may have missed (cheap: one access() for active containers).
   * A container recovery has not checked yet is answered from its record, without waiting.
   */
  async refresh(id: string): Promise<void> {
    const c = this.deps.store.getContainer(id);
    if (!c || !isActive(c.state.state) || this.unchecked.has(id)) return;
    const pid = this.unmonitored.get(id);
    if (pid !== undefined && !(await processAlive(pid))) {
      await this.locks.run(`container:${id}`, () => this.noticeUnmonitoredExit(id));
      return;
    }
    const exitFile = join(this.settings.exitsDir, id);
    const exists = await access(exitFile).then(
      () => true,
      () => false,
    );
    if (exists) await this.sync(id);
  }

  // --- create --------------------------------------------------------------------------------

  async create(req: CreateRequest): Promise<StoredContainer> {
    const { store, images, log } = this.deps;
    if (store.getName(req.nameKey)) {
      const holder = store.getName(req.nameKey);
      throw new AlreadyExistsError('container name', req.nameKey, {
        hint: `it is held by container ${holder?.id ?? '?'}; remove that container first`,
      });
    }
    const image = await images.resolve(req.image);
    if (!image) {
      throw new NotFoundError('image', req.image, { hint: `pull it first (crictl pull ${req.image})` });
    }
    const volumeImages = await Promise.all(
      (req.imageVolumes ?? []).map(async (v) => {
        const found = await images.resolve(v.image);
        if (!found) {
          throw new NotFoundError('image', v.image, {
            hint: `${v.field} names an image volume that is not on this node; pull it first (crictl pull ${v.image})`,
          });
        }
        return found;
      }),
    );
    const runtime = this.runtimeFor(req.runtimeHandler);
    const id = randomBytes(32).toString('hex');
    const createdAt = nowNs();
    const config: RecordInput<'containerConfig'> = {
      id,
      sandboxId: req.sandboxId,
      kind: req.kind,
      name: req.name,
      attempt: req.attempt,
      image: req.image,
      imageRef: image.id,
      labels: req.labels,
      annotations: req.annotations,
      logPath: req.logPath,
      mounts: req.mounts,
      ...(volumeImages.length > 0 ? { imageVolumes: volumeImages.map((i) => i.id) } : {}),
      ...(req.idmap ? { idmap: req.idmap } : {}),
      tty: req.tty,
      stdin: req.stdin,
      stdinOnce: req.stdinOnce,
      stopSignal: req.stopSignal ?? (image.run.stopSignal === '' ? 'SIGTERM' : image.run.stopSignal),
      criConfig: req.criConfig,
      createdAt,
    };
    // The record, the name and the intent first: a crash from here on leaves a 'configured'
    // container that recovery rolls back, never an untracked mount or process.
    const first = new StoreBatch()
      .putContainerConfig(config)
      .putContainerState(id, { state: 'configured', updatedAt: createdAt })
      .putName(req.nameKey, { kind: 'container', id });
    const intent = this.journal.beginIn(first, 'create-container', id, 'recorded');
    await store.commit(first);
    failpoint(`create-${req.kind}:after-record`);
    try {
      await this.locks.run(`container:${id}`, () =>
        this.initContainer(id, req, image, volumeImages, runtime, intent),
      );
    } catch (err) {
      if (req.kind === 'app' && isProcessStartError(err)) {
        // The image lacks the command (or it cannot be executed): as Kubernetes runtimes do,
        // the container exists and has ended, with the reason; kubelet shows it and backs off.
        await this.locks.run(`container:${id}`, () => this.recordStartError(id, err));
        return this.get(id);
      }
      log.warn(
        { containerId: id, err: err instanceof Error ? err.message : String(err) },
        'create failed; cleaning up',
      );
      await this.destroy(id, req.nameKey).catch((cleanupErr: unknown) => {
        log.error({ containerId: id, err: cleanupErr }, 'cleanup after a failed create failed');
      });
      throw err;
    }
    return this.get(id);
  }

  /** configured → created: rootfs, config.json, conmon + runc create. */
  private async initContainer(
    id: string,
    req: Pick<
      CreateRequest,
      'buildSpec' | 'logPath' | 'name' | 'tty' | 'stdin' | 'stdinOnce' | 'idmap' | 'mounts' | 'kind'
    >,
    image: StoredImage,
    volumeImages: readonly StoredImage[],
    runtime: { runc: Runc; path: string },
    intent: Intent,
  ): Promise<void> {
    const bundle = this.bundleDir(id);
    const kind = req.kind;
    await intent.advance('rootfs');
    await mkdir(bundle, { recursive: true, mode: 0o711 });
    await mkdir(this.persistDir(id), { recursive: true, mode: 0o700 });
    const obs = this.deps.observer;
    await timed(obs, 'rootfs', () => this.mountRoot(id, image, req.idmap), kind);
    failpoint(`create-${kind}:after-rootfs`);
    const imageVolumes = await this.mountImageVolumes(id, volumeImages);
    const idmappedMounts = await this.mountIdmappedVolumes(id, req.mounts);
    const user = await timed(
      obs,
      'spec',
      async () => {
        const spec = await req.buildSpec({
          id,
          rootfs: this.rootfsDir(id),
          image,
          imageVolumes,
          idmappedMounts,
        });
        await writeFileAtomic(join(bundle, 'config.json'), JSON.stringify(spec), 0o600);
        return userOf(spec);
      },
      kind,
    );
    if (req.logPath !== '') await mkdir(dirname(req.logPath), { recursive: true, mode: 0o755 });
    await rm(join(this.settings.exitsDir, id), { force: true });
    await intent.advance('runtime-create');
    const { pid, conmonPid } = await timed(obs, 'runtime_create', () => this.spawn(id, req, runtime), kind);
    failpoint(`create-${kind}:after-runtime-create`);
    await this.makeRecursivelyReadOnly(pid, req.mounts);
    await this.transition(
      id,
      { state: 'created', pid, conmonPid, ...(user ? { user } : {}) },
      intent.doneIn(new StoreBatch()),
    );
  }

  /** Records a new state (with `batch`'s other changes, in one write), then publishes the event. */
  private async transition(
    id: string,
    patch: Partial<Omit<ContainerStateRecord, 'v' | 'updatedAt'>> & { state: ContainerState },
    batch = new StoreBatch(),
  ): Promise<void> {
    const current = this.deps.store.getContainer(id);
    if (!current) throw new NotFoundError('container', id);
    const { v: _v, ...prev } = current.state;
    await this.deps.store.commit(batch.putContainerState(id, { ...prev, ...patch, updatedAt: nowNs() }));
    // events: no await between the commit and the publish (ordering, see events.ts).
    this.events.transitioned(current.config, prev.state, patch.state);
  }

  /** Mounts the container's image volumes; returns their mount points by index. */
  private async mountImageVolumes(id: string, volumeImages: readonly StoredImage[]): Promise<string[]> {
    const { images } = this.deps;
    const points: string[] = [];
    for (const [i, img] of volumeImages.entries()) {
      points.push(await mountImageVolume(images.layerDirs(img), images.layersRoot, this.containerDir(id), i));
    }
    return points;
  }

  /**
   * Makes the recursive_read_only mounts of a created (not yet started) container read-only with
   * everything below them (bin/crisp-rro-mount in its mount namespace; runc 1.1 has no rro).
   */
  private async makeRecursivelyReadOnly(pid: number, mounts: ContainerConfigRecord['mounts']): Promise<void> {
    const paths = mounts.filter((m) => m.recursiveReadOnly === true).map((m) => m.containerPath);
    if (paths.length === 0) return;
    try {
      await runCommand(this.settings.rroHelper ?? RRO_HELPER, [String(pid), ...paths], { timeoutMs: 10_000 });
    } catch (err) {
      const why =
        err instanceof CommandFailure ? err.stderrTail : err instanceof Error ? err.message : String(err);
      throw new FailedPreconditionError(
        `cannot make ${paths.join(', ')} read-only recursively (recursive_read_only): ${why.trim()}`,
        { cause: err },
      );
    }
  }

  /** The container's root: its image's layers, id-mapped into the pod's user namespace if any. */
  private async mountRoot(id: string, image: StoredImage, idmap: IdMaps | undefined): Promise<void> {
    const paths = { containerDir: this.containerDir(id), target: this.rootfsDir(id) };
    const layers = this.deps.images.layerDirs(image);
    if (idmap) await mountIdmappedRootfs(layers, paths, idmap, this.settings.idmapHelper);
    else await mountRootfs(layers, this.deps.images.layersRoot, paths);
  }

  /** Mounts the container's id-mapped volumes; returns their mount points by mount index. */
  private async mountIdmappedVolumes(
    id: string,
    mounts: ContainerConfigRecord['mounts'],
  ): Promise<Map<number, string>> {
    const points = new Map<number, string>();
    for (const [i, m] of mounts.entries()) {
      if (!m.idmap) continue;
      const at = idmappedVolumePath(this.containerDir(id), i);
      await idmapMount(m.hostPath, at, m.idmap, this.settings.idmapHelper);
      points.set(i, at);
    }
    return points;
  }

  /** Unmounts the rootfs, its id-mapped layers and the image volumes (tolerating what is not mounted). */
  private async unmountAll(id: string): Promise<void> {
    await unmountRootfs(this.rootfsDir(id));
    await unmountIdmappedLayers(this.containerDir(id));
    await unmountImageVolumes(this.containerDir(id));
  }

  /** A container whose process could not be started: cleaned up, EXITED with StartError. */
  private async recordStartError(id: string, err: CommandError): Promise<void> {
    const c = this.deps.store.getContainer(id);
    if (c) await this.runtimeFor(this.handlerOf(c)).runc.delete(id, true);
    await this.unmountAll(id);
    const now = nowNs();
    await this.transition(id, {
      state: 'exited',
      exitCode: 128,
      reason: 'StartError',
      message: err.stderrTail || err.message,
      startedAt: now,
      finishedAt: now,
      pid: undefined,
      conmonPid: undefined,
    });
    this.deps.log.warn({ containerId: id, error: err.message }, 'container process could not be started');
  }

  // --- start ---------------------------------------------------------------------------------

  async start(id: string): Promise<void> {
    const c = this.get(id);
    if (c.config.kind === 'app') this.requireInfraRunning(c.config.sandboxId);
    await this.locks.run(`container:${c.config.id}`, async () => {
      const current = this.get(c.config.id);
      requireState('start', current.state.state, c.config.id);
      const runtime = this.runtimeFor(this.handlerOf(current));
      if (current.state.state !== 'created') await this.reinit(current, runtime);
      // Taken before runc start returns: a short-lived process may have exited (and conmon
      // stamped its exit file) by the time the call comes back.
      const startedAt = nowNs();
      await timed(
        this.deps.observer,
        'runtime_start',
        () => runtime.runc.start(current.config.id),
        current.config.kind,
      );
      failpoint(`start-${current.config.kind}:after-runtime-start`);
      await this.transition(current.config.id, { state: 'running', startedAt });
    });
  }

  /** A container runs under its pod's runtime handler. */
  private handlerOf(c: StoredContainer): string {
    return this.deps.store.getSandbox(c.config.sandboxId)?.config.runtimeHandler ?? '';
  }

  /**
   * libpod's reinit: a stopped or exited container is cleaned up and created again from its
   * saved config.json (same id, same upper dir), ready to start.
   */
  private async reinit(c: StoredContainer, runtime: { runc: Runc; path: string }): Promise<void> {
    const id = c.config.id;
    await this.cleanup(id);
    const image = await this.deps.images.resolve(c.config.imageRef);
    if (!image) throw new NotFoundError('image', c.config.image, { hint: `it was removed; pull it again` });
    await this.mountRoot(id, image, c.config.idmap);
    const volumeImages = await Promise.all(
      (c.config.imageVolumes ?? []).map(async (ref) => {
        const found = await this.deps.images.resolve(ref);
        if (!found)
          throw new NotFoundError('image', ref, {
            hint: 'an image volume of the container was removed; pull it again',
          });
        return found;
      }),
    );
    await this.mountImageVolumes(id, volumeImages);
    await this.mountIdmappedVolumes(id, c.config.mounts);
    await rm(join(this.settings.exitsDir, id), { force: true });
    await rm(join(this.persistDir(id), 'oom'), { force: true });
    await rm(join(this.persistDir(id), 'exit'), { force: true });
    let spawned: { pid: number; conmonPid: number };
    try {
      spawned = await this.spawn(id, c.config, runtime);
      await this.makeRecursivelyReadOnly(spawned.pid, c.config.mounts).catch(async (err: unknown) => {
        await runtime.runc.delete(id, true);
        throw err;
      });
    } catch (err) {
      if (isProcessStartError(err)) await this.recordStartError(id, err);
      else await this.unmountAll(id);
      throw err;
    }
    await this.transition(id, {
      state: 'created',
      pid: spawned.pid,
      conmonPid: spawned.conmonPid,
      exitCode: undefined,
      reason: undefined,
      message: undefined,
      finishedAt: undefined,
    });
  }

  private spawn(
    id: string,
    cfg: Pick<ContainerConfigRecord, 'name' | 'logPath' | 'tty' | 'stdin' | 'stdinOnce'>,
    runtime: { path: string },
  ): Promise<{ pid: number; conmonPid: number }> {
    return createContainer({
      conmonPath: this.settings.conmonPath,
      runtimePath: runtime.path,
      runtimeRoot: this.settings.runtimeRoot,
      id,
      name: cfg.name,
      bundle: this.bundleDir(id),
      // conmon always needs a log target; 'none' keeps nothing (the infra container).
      logPath: cfg.logPath === '' ? 'none' : cfg.logPath,
      exitDir: this.settings.exitsDir,
      persistDir: this.persistDir(id),
      socketDir: this.settings.attachDir,
      terminal: cfg.tty,
      stdin: cfg.stdin,
      stdinOnce: cfg.stdinOnce,
      systemdCgroup: this.settings.systemdCgroup,
      log: this.deps.log,
    });
  }

  private requireInfraRunning(sandboxId: string): void {
    const infra = this.deps.store
      .listContainers()
      .find((c) => c.config.sandboxId === sandboxId && c.config.kind === 'infra');
    if (infra?.state.state !== 'running') {
      throw new FailedPreconditionError(
        `pod sandbox "${sandboxId}" is not running (its infra container is ${infra?.state.state ?? 'missing'}): start a new pod`,
      );
    }
  }

  // --- resources -----------------------------------------------------------------------------

  /**
   * Applies new resource limits to a live container (`runc update`), records them (as the CRI
   * sent them, for ContainerStatus.resources) and writes them into config.json so a restart
   * keeps them.
   */
  async updateResources(id: string, input: ContainerResourcesInput, asReceived: JsonValue): Promise<void> {
    const c = this.get(id);
    const resources = containerResources(input, [], this.settings.resourceFacts ?? {}, 'linux');
    const { devices: _devices, ...live } = resources;
    await this.locks.run(`container:${c.config.id}`, async () => {
      const current = this.get(c.config.id);
      requireState('update', current.state.state, c.config.id);
      await this.runtimeFor(this.handlerOf(current)).runc.update(c.config.id, live);
      const specPath = join(this.bundleDir(c.config.id), 'config.json');
      const spec = JSON.parse(await readFile(specPath, 'utf8')) as {
        linux?: { resources?: Record<string, unknown> };
      };
      if (spec.linux) {
        spec.linux.resources = { ...(spec.linux.resources ?? {}), ...live };
        await writeFileAtomic(specPath, JSON.stringify(spec), 0o600);
      }
      await this.transition(c.config.id, { state: current.state.state, resources: asReceived });
    });
  }

  // --- pause ---------------------------------------------------------------------------------

  /** Freezes every process of a running container (cgroup freezer, through runc). */
  async pause(id: string): Promise<void> {
    const c = this.get(id);
    await this.locks.run(`container:${c.config.id}`, async () => {
      const current = this.get(c.config.id);
      requireState('pause', current.state.state, c.config.id);
      await this.runtimeFor(this.handlerOf(current)).runc.pause(c.config.id);
      await this.transition(c.config.id, { state: 'paused' });
    });
  }

  async unpause(id: string): Promise<void> {
    const c = this.get(id);
    await this.locks.run(`container:${c.config.id}`, async () => {
      const current = this.get(c.config.id);
      requireState('unpause', current.state.state, c.config.id);
      await this.runtimeFor(this.handlerOf(current)).runc.resume(c.config.id);
      await this.transition(c.config.id, { state: 'running' });
    });
  }

  // --- recovery ------------------------------------------------------------------------------

  /** Whether recovery has yet to check this container (its record is from before this start). */
  isUnchecked(id: string): boolean {
    return this.unchecked.has(id);
  }

  /** How many containers recovery has yet to check. */
  get uncheckedCount(): number {
    return this.unchecked.size;
  }

  /**
   * libpod's refresh and sync after a restart: every container recorded before this start is
   * reconciled with conmon's exit file, `runc state`, conmon's pid and its intent, a few at a
   * time and each within `timeoutMs`, so one broken container delays nobody else. Half-made
   * containers are rolled back, half-removed ones removed. A container that could not be checked
   * (its runtime hangs) stays unchecked and is tried again every few seconds.
   */
  async recover(timeoutMs = RECOVERY_TIMEOUT_MS): Promise<Map<RecoveryOutcome, number>> {
    const rank = (id: string): number => {
      const state = this.deps.store.getContainer(id)?.state.state;
      return state === 'configured' || state === 'removing' ? 0 : 1;
    };
    // Half-made and half-removed containers first: they are the ones that must not linger.
    const ids = [...this.unchecked].sort((a, b) => rank(a) - rank(b));
    const outcomes = await mapLimit(ids, RECOVERY_CONCURRENCY, async (id) => {
      try {
        const outcome = await within(
          timeoutMs,
          this.locks.run(`container:${id}`, () => this.recoverOne(id, timeoutMs)),
          () => new DeadlineExceededError(`recovery of container ${id} took more than ${timeoutMs} ms`),
        );
        this.unchecked.delete(id);
        const level = outcome === 'unchanged' || outcome === 'running' ? 'debug' : 'info';
        this.deps.log[level]({ containerId: id, outcome }, 'container recovered');
        return outcome;
      } catch (err) {
        this.deps.log.error(
          { containerId: id, err },
          'could not recover the container; it is reported as recorded and tried again shortly',
        );
        return 'failed' as const;
      }
    });
    this.scheduleRecoveryRetry(timeoutMs);
    const counts = new Map<RecoveryOutcome, number>();
    for (const o of outcomes) counts.set(o, (counts.get(o) ?? 0) + 1);
    return counts;
  }

  /** Tries unchecked containers again, and looks at unmonitored ones, until none is left. */
  private scheduleRecoveryRetry(timeoutMs: number): void {
    clearTimeout(this.retryTimer);
    if (this.unchecked.size === 0 && this.unmonitored.size === 0) return;
    this.retryTimer = setTimeout(() => {
      void (async () => {
        for (const id of [...this.unmonitored.keys()]) await this.refresh(id).catch(() => undefined);
        if (this.unchecked.size > 0) await this.recover(timeoutMs);
        else this.scheduleRecoveryRetry(timeoutMs);
      })();
    }, RECOVERY_RETRY_MS);
    this.retryTimer.unref();
  }

  private async recoverOne(id: string, timeoutMs: number): Promise<RecoveryOutcome> {
    const c = this.deps.store.getContainer(id);
    if (!c) return 'unchanged';
    switch (c.state.state) {
      case 'configured': {
        // A create that never answered: undo whatever of it happened (its intent says how far).
        const step = this.journal.forTarget(id, 'create-container')[0]?.step ?? 'unknown';
        this.deps.log.warn({ containerId: id, step }, 'rolling back a container create cut short by a crash');
        await this.destroy(id, this.nameKeyOf(id));
        return 'rolled-back';
      }
      case 'removing':
        await this.destroy(id, this.nameKeyOf(id));
        return 'removed';
      case 'stopped':
        await this.cleanup(id);
        return 'cleaned';
      case 'exited':
        return (await this.leftoversOf(id)) ? (await this.cleanupExited(id), 'cleaned') : 'unchanged';
      case 'created':
      case 'running':
      case 'paused':
      case 'unknown':
        return this.recoverActive(c, timeoutMs);
    }
  }

  /** Whether an exited container still has runtime state or mounts (a crash during a restart). */
  private async leftoversOf(id: string): Promise<boolean> {
    const runtimeState = await access(join(this.settings.runtimeRoot, id)).then(
      () => true,
      () => false,
    );
    return runtimeState || (await isMounted(this.rootfsDir(id)));
  }

  private async cleanupExited(id: string): Promise<void> {
    const c = this.deps.store.getContainer(id);
    if (!c) return;
    await this.runtimeFor(this.handlerOf(c)).runc.delete(id, true);
    await this.unmountAll(id);
  }

  private async recoverActive(c: StoredContainer, timeoutMs: number): Promise<RecoveryOutcome> {
    const id = c.config.id;
    if (await this.syncLocked(id)) return 'exited-while-down';
    const { runc } = this.runtimeFor(this.handlerOf(c));
    const st = await runc.state(id, { timeoutMs });
    if (!st) {
      // The node restarted (the run dir is empty) or the runtime state was removed: as libpod
      // does, the container is over; kubelet starts a new one.
      await this.recordLostExit(
        c,
        'the runtime has no state for it: the node restarted, or its runtime state was removed',
      );
      return 'exit-lost';
    }
    const conmonUp = c.state.conmonPid !== undefined && (await this.isConmonOf(c.state.conmonPid, id));
    if (st.status === 'stopped') {
      if (conmonUp) {
        // conmon is about to write the exit file.
        const deadline = performance.now() + EXIT_FILE_GRACE_MS;
        while (performance.now() < deadline) {
          if (await this.syncLocked(id)) return 'exited-while-down';
          await sleep(EXIT_POLL_MS);
        }
      }
      await this.recordLostExit(
        c,
        'its process ended while its conmon was gone, so the exit code is unknown',
      );
      return 'exit-lost';
    }
    const patch: { startedAt?: string; pid?: number } = {};
    if (st.status === 'running' || st.status === 'paused') {
      if (c.state.state !== st.status) {
        this.deps.log.warn(
          { containerId: id, recorded: c.state.state, runtime: st.status },
          'the runtime disagrees with the record; taking the runtime state',
        );
      }
      // A crash between `runc start` and its record: the process's own start time is the truth.
      if (c.state.startedAt === undefined) {
        const started = await processStartedAtNs(st.pid);
        if (started !== undefined) patch.startedAt = started.toString();
      }
    }
    if (st.pid !== c.state.pid && st.pid > 0) patch.pid = st.pid;
    const state = st.status === 'running' || st.status === 'paused' ? st.status : c.state.state;
    if (state !== c.state.state || Object.keys(patch).length > 0)
      await this.transition(id, { ...patch, state });
    if (!conmonUp) {
      this.unmonitored.set(id, st.pid);
      this.deps.log.warn(
        { containerId: id, conmonPid: c.state.conmonPid ?? null },
        'the container runs but its conmon is gone: its logs stop and its exit code will be unknown',
      );
      return 'unmonitored';
    }
    return 'running';
  }

  /** Whether `pid` is the conmon of container `id` (not a process that reused the pid). */
  private async isConmonOf(pid: number, id: string): Promise<boolean> {
    const argv = await processArgv(pid);
    return argv !== undefined && argv.some((a) => a.endsWith('conmon')) && argv.includes(id);
  }

  /** An unmonitored container's process is gone: recorded EXITED with the unknown exit code. */
  private async noticeUnmonitoredExit(id: string): Promise<void> {
    const c = this.deps.store.getContainer(id);
    this.unmonitored.delete(id);
    if (!c || !isActive(c.state.state)) return;
    await this.recordLostExit(c, 'its process ended while its conmon was gone, so the exit code is unknown');
  }

  /**
   * Records an exit whose code is lost (255, reason Unknown) and cleans up. For a container that
   * started before the node booted, the boot is the best bound on when it ended.
   */
  private async recordLostExit(c: StoredContainer, why: string): Promise<void> {
    const id = c.config.id;
    let finished = BigInt(nowNs());
    const boot = await bootTimeNs().catch(() => undefined);
    const started = BigInt(c.state.startedAt ?? '0');
    if (boot !== undefined && started > 0n && started < boot) finished = boot;
    if (finished < started) finished = started;
    await this.transition(id, {
      state: 'stopped',
      exitCode: UNKNOWN_EXIT_CODE,
      reason: 'Unknown',
      message: why,
      finishedAt: finished.toString(),
      pid: undefined,
    });
    this.unmonitored.delete(id);
    this.deps.log.warn({ containerId: id, why }, 'container exit code lost');
    await this.cleanup(id);
  }

  private nameKeyOf(id: string): string | undefined {
    return this.deps.store.listNames().find((n) => n.kind === 'container' && n.id === id)?.name;
  }

  // --- exits ---------------------------------------------------------------------------------

  private async syncLogged(id: string): Promise<void> {
    try {
      await this.sync(id);
    } catch (err) {
      this.deps.log.error({ containerId: id, err }, 'could not record a container exit');
    }
  }

  /** Brings the record up to date from conmon's exit and oom files; cleans up after an exit. */
  async sync(id: string): Promise<void> {
    await this.locks.run(`container:${id}`, () => this.syncLocked(id));
  }

  /** sync() under the container's lock; true when an exit was recorded. */
  private async syncLocked(id: string): Promise<boolean> {
    const c = this.deps.store.getContainer(id);
    if (!c || !isActive(c.state.state)) return false;
    const exit = await readExitFile(this.settings.exitsDir, id);
    if (!exit) return false;
    const oom = await hasOomFile(this.persistDir(id));
    if (oom) this.deps.observer?.oomKilled();
    const reason = oom ? 'OOMKilled' : exit.exitCode === 0 ? 'Completed' : 'Error';
    // The exit file's mtime has millisecond precision; never report finishing before starting.
    const finishedNs = BigInt(msToNs(exit.finishedAt.getTime()));
    const startedNs = BigInt(c.state.startedAt ?? '0');
    await this.transition(id, {
      state: 'stopped',
      exitCode: exit.exitCode,
      finishedAt: (finishedNs > startedNs ? finishedNs : startedNs).toString(),
      reason,
      pid: undefined,
    });
    this.unmonitored.delete(id);
    this.deps.log.info({ containerId: id, exitCode: exit.exitCode, reason }, 'container exited');
    await this.cleanup(id);
    return true;
  }

  /** stopped/created/configured → exited: runc delete, unmount the rootfs. Idempotent. */
  private async cleanup(id: string): Promise<void> {
    const c = this.deps.store.getContainer(id);
    if (!c) return;
    const runtime = this.runtimeFor(this.handlerOf(c));
    await runtime.runc.delete(id, true);
    await this.unmountAll(id);
    if (c.state.state !== 'exited') {
      await this.transition(id, { state: 'exited', pid: undefined });
    }
  }

  // --- stop ----------------------------------------------------------------------------------

  /**
   * Sends the stop signal, waits up to `timeoutSec`, then SIGKILLs every process of the
   * container and waits for the exit. Idempotent: a container that is not running is fine.
   * The container's lock is not held while waiting, so reads and other work go on.
   */
  async stop(id: string, timeoutSec: number): Promise<void> {
    const c = this.get(id);
    const cid = c.config.id;
    await this.refresh(cid);
    const current = this.get(cid);
    if (!isActive(current.state.state)) {
      if (current.state.state === 'stopped')
        await this.locks.run(`container:${cid}`, () => this.cleanup(cid));
      return;
    }
    const { runc } = this.runtimeFor(this.handlerOf(current));
    // A frozen process cannot act on a signal (SIGKILL included): thaw it first. The freezer may
    // also have been set behind crisp's back; that is checked only if SIGKILL does not work.
    const thaw = async (): Promise<void> => {
      await runc.resume(cid).catch((err: unknown) => {
        this.deps.log.warn({ containerId: cid, err }, 'could not thaw a frozen container to stop it');
      });
    };
    if (current.state.state === 'paused') await thaw();
    if (current.state.state === 'created') {
      // Never started: nothing runs yet but runc's init; kill it.
      await runc.kill(cid, 'KILL', true).catch(() => undefined);
    } else if (timeoutSec > 0) {
      await runc.kill(cid, current.config.stopSignal, false).catch((err: unknown) => {
        this.deps.log.warn({ containerId: cid, err }, 'stop signal not delivered; killing');
      });
      failpoint(`stop-${current.config.kind}:after-signal`);
      if (await this.waitExit(cid, timeoutSec * 1000)) {
        this.deps.observer?.stopEscalation('signal');
        return;
      }
    }
    const killed = await runc.kill(cid, 'KILL', true).then(
      () => true,
      (err: unknown) => {
        this.deps.log.warn({ containerId: cid, err }, 'SIGKILL not delivered');
        return false;
      },
    );
    failpoint(`stop-${current.config.kind}:after-kill`);
    if (!killed && (await this.vanished(cid))) return;
    let exited = await this.waitExit(cid, FROZEN_CHECK_AFTER_MS);
    if (!exited) {
      if ((await runc.state(cid).catch(() => undefined))?.status === 'paused') await thaw();
      exited = await this.waitExit(cid, STOP_KILL_WAIT_MS);
    }
    if (exited) {
      this.deps.observer?.stopEscalation('kill');
      return;
    }
    this.deps.observer?.stopEscalation('unstoppable');
    throw new DeadlineExceededError(
      `container "${cid}" did not exit ${STOP_KILL_WAIT_MS / 1000} s after SIGKILL; check 'runc --root ${this.settings.runtimeRoot} state ${cid}'`,
    );
  }

  /**
   * After a failed kill: whether the container is gone behind crisp's back (no runtime state, or
   * stopped with its conmon gone, so no exit file will come); if so it is recorded EXITED with
   * the unknown exit code, and a stop of it succeeds.
   */
  private async vanished(id: string): Promise<boolean> {
    if (await this.waitExit(id, 0)) return true;
    return this.locks.run(`container:${id}`, async () => {
      const c = this.deps.store.getContainer(id);
      if (!c || !isActive(c.state.state)) return true;
      const st = await this.runtimeFor(this.handlerOf(c))
        .runc.state(id)
        .catch(() => undefined);
      const conmonUp = c.state.conmonPid !== undefined && (await this.isConmonOf(c.state.conmonPid, id));
      if (st && (st.status !== 'stopped' || conmonUp)) return false;
      await this.recordLostExit(
        c,
        st ? 'its conmon was gone, so the exit code is unknown' : 'its runtime state was gone',
      );
      return true;
    });
  }

  /** Waits for the exit file (then syncs); true if the container exited in time. */
  private async waitExit(id: string, ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    const exitFile = join(this.settings.exitsDir, id);
    for (;;) {
      const exists = await access(exitFile).then(
        () => true,
        () => false,
      );
      if (exists) {
        await this.sync(id);
        return true;
      }
      if (performance.now() >= deadline) return false;
      await sleep(EXIT_POLL_MS);
    }
  }

  // --- remove --------------------------------------------------------------------------------

  /** Force-stops if needed, then removes everything. Idempotent for unknown ids. */
  async remove(id: string): Promise<void> {
    const c = this.find(id);
    if (!c) return;
    const cid = c.config.id;
    if (isActive(c.state.state)) await this.stop(cid, 0);
    await this.locks.run(`container:${cid}`, () => this.destroy(cid, this.nameKeyOf(cid)));
  }

  /**
   * Removes the runtime state, mounts, dirs and records of a container. The 'removing' state and
   * the intent are durable first, so a crash part-way is finished by recovery.
   */
  private async destroy(id: string, nameKey: string | undefined): Promise<void> {
    const c = this.deps.store.getContainer(id);
    if (c && c.state.state !== 'removing') {
      const batch = new StoreBatch();
      if (this.journal.forTarget(id, 'remove-container').length === 0) {
        this.journal.beginIn(batch, 'remove-container', id, 'removing');
      }
      await this.transition(id, { state: 'removing' }, batch);
      failpoint(`remove-${c.config.kind}:after-removing`);
    }
    if (c) {
      const { runc } = this.runtimeFor(this.handlerOf(c));
      await runc.delete(id, true);
    }
    await this.unmountAll(id);
    await rm(this.bundleDir(id), { recursive: true, force: true });
    await removeRootfsStorage(this.containerDir(id));
    await rm(join(this.settings.exitsDir, id), { force: true });
    await rm(join(this.settings.attachDir, id), { recursive: true, force: true });
    const batch = new StoreBatch();
    if (c) batch.delContainer(id);
    if (nameKey !== undefined) batch.delName(nameKey);
    for (const intent of this.journal.forTarget(id)) batch.delIntent(intent.id);
    await this.deps.store.commit(batch);
    this.unchecked.delete(id);
    this.unmonitored.delete(id);
    // events: DELETED right after the records go.
    if (c) this.events.deleted(c);
  }

  // --- exec and logs ---------------------------------------------------------------------------

  /** Runs `cmd` in the container; `signal` (the caller going away) kills it. */
  async execSync(
    id: string,
    cmd: string[],
    timeoutSec: number,
    signal?: AbortSignal,
  ): Promise<ExecSyncResult> {
    const c = this.get(id);
    await this.refresh(c.config.id);
    requireState('exec', this.get(c.config.id).state.state, c.config.id);
    if (cmd.length === 0) throw new InvalidArgumentError('cmd', 'required, got an empty command');
    const processSpec = await this.processSpecOf(c.config.id);
    const runtime = this.runtimeFor(this.handlerOf(c));
    const workDir = await mkdtemp(join(this.settings.execDir, 'exec-'));
    try {
      const res = await execSync({
        conmonPath: this.settings.conmonPath,
        runtimePath: runtime.path,
        runtimeRoot: this.settings.runtimeRoot,
        id: c.config.id,
        name: c.config.name,
        processSpec: { ...processSpec, args: cmd, terminal: false },
        timeoutSec,
        ...(signal ? { signal } : {}),
        workDir,
        systemdCgroup: this.settings.systemdCgroup,
        maxOutputBytes: EXEC_SYNC_OUTPUT_CAP,
        log: this.deps.log,
      });
      if (res.timedOut) {
        return {
          stdout: res.stdout,
          stderr: Buffer.concat([res.stderr, Buffer.from(`command timed out after ${timeoutSec} s\n`)]),
          exitCode: -1,
        };
      }
      return { stdout: res.stdout, stderr: res.stderr, exitCode: res.exitCode };
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  }

  /** The container's process settings (config.json's `process`), which an exec starts from. */
  private async processSpecOf(id: string): Promise<Record<string, unknown>> {
    const spec = JSON.parse(await readFile(join(this.bundleDir(id), 'config.json'), 'utf8')) as {
      process: Record<string, unknown>;
    };
    return spec.process;
  }

  /** Refuses (NOT_FOUND / FAILED_PRECONDITION) unless `op` may run on the container now. */
  async checkStreamable(id: string, op: 'exec' | 'attach'): Promise<StoredContainer> {
    const c = this.get(id);
    await this.refresh(c.config.id);
    const now = this.get(c.config.id);
    requireState(op, now.state.state, now.config.id);
    return now;
  }

  /**
   * Runs `cmd` in the container with its stdio streamed (CRI Exec): conmon's exec-attach mode,
   * with a pty when `tty`. The session directory is removed once the command has ended.
   */
  async execStream(
    id: string,
    cmd: string[],
    opts: { tty: boolean; stdin: boolean; consoleSize?: { width: number; height: number } },
  ): Promise<ExecSession> {
    const c = await this.checkStreamable(id, 'exec');
    const processSpec = await this.processSpecOf(c.config.id);
    const runtime = this.runtimeFor(this.handlerOf(c));
    const workDir = await mkdtemp(join(this.settings.execDir, 'stream-'));
    try {
      const session = await execAttach({
        conmonPath: this.settings.conmonPath,
        runtimePath: runtime.path,
        runtimeRoot: this.settings.runtimeRoot,
        id: c.config.id,
        sessionId: basename(workDir),
        processSpec: {
          ...processSpec,
          args: cmd,
          terminal: opts.tty,
          ...(opts.tty && opts.consoleSize ? { consoleSize: opts.consoleSize } : {}),
        },
        stdin: opts.stdin,
        workDir,
        systemdCgroup: this.settings.systemdCgroup,
        log: this.deps.log,
      });
      void session.exit
        .catch(() => undefined)
        .then(() => rm(workDir, { recursive: true, force: true }))
        .catch((err: unknown) => {
          this.deps.log.warn({ err, workDir }, 'cannot remove exec session directory');
        });
      return session;
    } catch (err) {
      await rm(workDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Connects to the container's stdio through its conmon attach socket (CRI Attach). */
  async attach(
    id: string,
    opts: { stdin: boolean },
  ): Promise<AttachedStreams & { tty: boolean; resize(rows: number, cols: number): Promise<void> }> {
    const c = await this.checkStreamable(id, 'attach');
    const bundle = this.bundleDir(c.config.id);
    // A container made without stdin has none to attach to: the client's input is read and
    // dropped, as containerd and CRI-O do (kubectl attach -i sends stdin whatever the container).
    const streams = attachSocket(join(this.settings.attachDir, c.config.id, 'attach'), {
      stdin: opts.stdin && c.config.stdin,
      debug: (f, m) => {
        this.deps.log.debug(f, m);
      },
    });
    return {
      ...streams,
      tty: c.config.tty,
      resize: (rows, cols) => resizeTerminal(bundle, rows, cols),
    };
  }

  async reopenLog(id: string): Promise<void> {
    const c = this.get(id);
    await this.refresh(c.config.id);
    requireState('reopenLog', this.get(c.config.id).state.state, c.config.id);
    if (c.config.logPath === '') return;
    await reopenLog(this.bundleDir(c.config.id));
    // conmon reopens asynchronously; wait (bounded) until the file exists again.
    const deadline = performance.now() + 5_000;
    while (performance.now() < deadline) {
      if (
        await stat(c.config.logPath).then(
          () => true,
          () => false,
        )
      )
        return;
      await sleep(20);
    }
    throw new CommandError('conmon', undefined, `log file ${c.config.logPath} was not reopened within 5 s`);
  }
}
