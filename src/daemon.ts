/**
 * The composition root: builds the daemon's objects from the effective config, opens the
 * store, starts the operator endpoint and the CRI socket, and tears them down in reverse.
 * It holds no lifecycle logic of its own.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError, configDigest, derivePaths, type CrispConfig } from './config/index.js';
import type { CriContext, RuntimeInfo } from './cri/context.js';
import { startCriServer, type CriServer } from './cri/server.js';
import type { Logger } from './log/logger.js';
import { startMetricsServer, type MetricsServer } from './metrics/http-server.js';
import { InflightTracker } from './metrics/inflight.js';
import { createMetrics } from './metrics/registry.js';
import { CniManager } from './netns/cni.js';
import { PodCidrStore } from './sandbox/pod-cidr.js';
import { NetworkReconciler } from './sandbox/network-reconciler.js';
import { OrphanReconciler, staleTempFiles } from './sandbox/orphan-reconciler.js';
import { PodOrphans } from './sandbox/orphan-pods.js';
import { containerOrphans } from './container/orphans.js';
import { checkRuntimeBinaries } from './oci/runtime-check.js';
import { startAdminServer } from './admin/admin-server.js';
import { buildImageService, type ImageEngineSettings } from './image/build.js';
import { BUILTIN_PAUSE_IMAGE } from './image/pause.js';
import { ContainerEventBus } from './container/events.js';
import { ContainerManager, RECOVERY_TIMEOUT_MS, type ContainerObserver } from './container/manager.js';
import { hostCapabilities } from './container/spec.js';
import { hostCgroups } from './container/cgroup-host.js';
import { idmappedMountsWork } from './container/rootfs.js';
import type { ResourceFacts } from './container/spec-types.js';
import { NetnsManager } from './netns/netns.js';
import { apparmorEnabled } from './oci/apparmor.js';
import { oomScoreAdjFloor } from './oci/oom-floor.js';
import { SandboxManager } from './sandbox/manager.js';
import { StreamingServer } from './streaming/server.js';
import { PodFiles } from './sandbox/pod-files.js';
import { LevelStateStore } from './store/state-store.js';
import { acquireInstanceLock, type InstanceLock } from './util/instance-lock.js';
import { resolveGroup } from './util/group.js';
import { CRISP_VERSION } from './version.js';

/** How long shutdown waits for in-flight RPCs before cancelling them. */
export const SHUTDOWN_GRACE_MS = 10_000;
/** How often orphans (leaked pod networking included) are looked for; also once at start. */
const ORPHAN_RECONCILE_INTERVAL_MS = 60_000;
/** How long recovery gives one pod (a rollback removes its containers, network and files). */
const POD_RECOVERY_TIMEOUT_MS = 60_000;

export interface Daemon {
  metricsAddress: string | undefined;
  stop(): Promise<void>;
}

function runtimeInfo(
  config: CrispConfig,
  extra: () => Record<string, unknown>,
  mountSetattr: boolean,
  cni: Pick<CniManager, 'status'>,
): RuntimeInfo {
  const handlerNames = ['', ...Object.keys(config.runtimes).sort()];
  const binaries: Record<string, string> = { conmon: config.conmon_path };
  for (const [name, rt] of Object.entries(config.runtimes)) binaries[`runtime ${name}`] = rt.path;
  return {
    runtimeVersion: CRISP_VERSION,
    cgroupDriver: config.cgroup_driver,
    handlers: handlerNames.map((name) => ({
      name,
      recursiveReadOnlyMounts: mountSetattr,
      userNamespaces: mountSetattr,
    })),
    supplementalGroupsPolicy: true,
    runtimeReady: () => checkRuntimeBinaries(binaries),
    networkReady: () => cni.status(),
    verboseInfo: extra,
  };
}

export function imageSettings(config: CrispConfig): ImageEngineSettings {
  const paths = derivePaths(config);
  return {
    blobsDir: paths.blobsDir,
    layersDir: paths.layersDir,
    registriesConfig: config.image.registries_config,
    authFile: config.image.auth_file,
    pullTimeoutSeconds: config.image.pull_timeout_seconds,
    userAgent: `crisp/${CRISP_VERSION}`,
  };
}

/** Runs `steps` in reverse, logging (not throwing) failures, so every step gets its chance. */
async function unwind(log: Logger, steps: (() => Promise<unknown>)[]): Promise<void> {
  for (const step of steps.reverse()) {
    try {
      await step();
    } catch (err) {
      log.error({ err }, 'shutdown step failed');
    }
  }
}

/**
 * Start-up recovery of what the store records: containers first (pods' readiness rests on their
 * infra containers), then pods. What no record names was collected before the socket opened, by
 * the orphan reconciler's start-up pass.
 */
async function recover(parts: {
  containers: ContainerManager;
  sandboxes: SandboxManager;
  metrics: ReturnType<typeof createMetrics>;
  log: Logger;
}): Promise<void> {
  const { containers, sandboxes, metrics, log } = parts;
  const t0 = performance.now();
  const containerOutcomes = await containers.recover(RECOVERY_TIMEOUT_MS);
  const podOutcomes = await sandboxes.recover(POD_RECOVERY_TIMEOUT_MS);
  for (const [outcome, n] of containerOutcomes)
    metrics.recoveredObjects.inc({ kind: 'container', outcome }, n);
  for (const [outcome, n] of podOutcomes) metrics.recoveredObjects.inc({ kind: 'pod', outcome }, n);
  const seconds = (performance.now() - t0) / 1000;
  metrics.recoveryDuration.set(seconds);
  log.info(
    {
      durationMs: Math.round(seconds * 1000),
      containers: Object.fromEntries(containerOutcomes),
      pods: Object.fromEntries(podOutcomes),
    },
    'recovery finished',
  );
}

export async function startDaemon(config: CrispConfig, log: Logger): Promise<Daemon> {
  const startedAt = Date.now();
  const paths = derivePaths(config);
  const digest = configDigest(config);
  const undo: (() => Promise<unknown>)[] = [];
  // Before anything is touched: an unknown socket group is a configuration error (exit 2).
  const socketGid = config.socket_group === '' ? undefined : await resolveGroup(config.socket_group);
  if (config.socket_group !== '' && socketGid === undefined) {
    throw new ConfigError(`socket_group: the node has no group ${JSON.stringify(config.socket_group)}`, {
      file: '/etc/group',
      key: 'socket_group',
    });
  }
  try {
    const rootLock: InstanceLock = await acquireInstanceLock(
      `root_dir ${config.root_dir}`,
      `root:${config.root_dir}`,
    );
    undo.push(() => rootLock.release());
    const socketLock = await acquireInstanceLock(`socket ${config.listen}`, `listen:${config.listen}`);
    undo.push(() => socketLock.release());
    const runLock = await acquireInstanceLock(`run_dir ${config.run_dir}`, `run:${config.run_dir}`);
    undo.push(() => runLock.release());

    await mkdir(config.root_dir, { recursive: true, mode: 0o711 });
    await mkdir(config.run_dir, { recursive: true, mode: 0o755 });

    const store = new LevelStateStore(paths.stateDb);
    await store.open();
    undo.push(() => store.close());
    for (const warning of store.recoveryWarnings) {
      log.error(
        { db: paths.stateDb, warning },
        'state database recovered with data loss; kubelet will recreate what is missing',
      );
    }

    const metrics = createMetrics();
    const inflight = new InflightTracker();

    const images = buildImageService(imageSettings(config), store, log, {
      pullFinished: (result, seconds) => {
        metrics.imagePulls.inc({ result });
        metrics.imagePullDuration.observe(seconds);
      },
      pullBytes: (n) => {
        metrics.imagePullBytes.inc(n);
      },
    });
    // Unreferenced blobs and layers, and what a crash left in tmpDir, go in the orphan
    // reconciler's start-up pass below, which counts them.
    await images.init({ collect: false });
    if (config.image.pause_image === '') {
      try {
        const id = await images.ensureBuiltinPause();
        log.info({ image: BUILTIN_PAUSE_IMAGE, id }, 'built-in pause image ready');
      } catch (err) {
        log.error(
          { err },
          'could not build the built-in pause image: pods cannot start until catatonit is installed (make deps)',
        );
      }
    }

    const verboseInfo = (): Record<string, unknown> => ({
      config,
      daemon: { pid: process.pid, configDigest: digest, startedAt: new Date(startedAt).toISOString() },
    });
    const oomFloor = await oomScoreAdjFloor(config.oom_score_adj_clamp);
    if (oomFloor !== undefined) {
      log.info(
        { oomScoreAdjFloor: oomFloor },
        "negative oom_score_adj requests are raised to crisp's own score here",
      );
    }
    const observer: ContainerObserver = {
      stage: (stage, seconds, kind) => {
        metrics.podStartStage.observe({ stage, kind }, seconds);
      },
      oomKilled: () => {
        metrics.containerOoms.inc();
      },
      stopEscalation: (step) => {
        metrics.stopEscalations.inc({ step });
      },
    };
    const events = new ContainerEventBus(store);
    const cgroups = await hostCgroups();
    // User namespaces (id-mapped mounts) and recursive read-only mounts both rest on
    // mount_setattr(2) through crisp's python3 helpers: one probe decides both.
    const mountSetattr = await idmappedMountsWork(paths.tmpDir);
    if (!mountSetattr) {
      log.info('mount_setattr(2) does not work here: no user-namespaced pods, no recursive read-only mounts');
    }
    const resourceFacts: ResourceFacts = {
      cgroupV2: cgroups.version === 2,
      swapControllerAvailable: cgroups.swap,
      hugetlbControllerAvailable: cgroups.hugetlb,
      hugepageSizes: cgroups.hugepageSizes,
      tolerateMissingHugetlbController: config.tolerate_missing_hugetlb_controller,
      pidsLimit: config.pids_limit,
    };
    log.debug({ cgroups }, 'host cgroups');
    const containers = new ContainerManager(
      { store, images, log: log.child({ component: 'container' }), observer, events },
      {
        conmonPath: config.conmon_path,
        runtimes: config.runtimes,
        defaultRuntime: config.default_runtime,
        runtimeRoot: paths.runcRoot,
        systemdCgroup: config.cgroup_driver === 'systemd',
        bundlesDir: paths.bundlesDir,
        exitsDir: paths.exitsDir,
        containersDir: paths.containersDir,
        attachDir: paths.attachDir,
        execDir: paths.execDir,
        resourceFacts,
      },
    );
    await containers.init();
    undo.push(() => {
      containers.close();
      return Promise.resolve();
    });
    const netns = new NetnsManager(paths.netnsDir, { log: log.child({ component: 'netns' }) });
    await netns.init();
    const podCidrs = new PodCidrStore(paths.podCidrFile);
    await podCidrs.load();
    const cni = new CniManager({
      confDir: config.network.cni_conf_dir,
      binDirs: config.network.cni_bin_dirs,
      cacheDir: paths.cniResultsDir,
      timeoutMs: config.network.plugin_timeout_seconds * 1000,
      log: log.child({ component: 'cni' }),
      observe: (op, pluginType, seconds) => {
        metrics.cniOperationDuration.observe({ op, plugin_type: pluginType }, seconds);
      },
    });
    const podFiles = new PodFiles(paths.podsDir, { log: log.child({ component: 'pod-files' }) });
    const sandboxes = new SandboxManager(
      {
        store,
        containers,
        images,
        netns,
        network: cni,
        podFiles,
        log: log.child({ component: 'sandbox' }),
        observer,
      },
      {
        pauseImage: config.image.pause_image === '' ? BUILTIN_PAUSE_IMAGE : config.image.pause_image,
        cgroupDriver: config.cgroup_driver,
        oomScoreAdjFloor: oomFloor,
        availableCapabilities: await hostCapabilities(),
        apparmorEnabled: await apparmorEnabled(),
        resourceFacts,
        userNamespaces: mountSetattr,
        recursiveReadOnlyMounts: mountSetattr,
        podCidrs,
      },
    );

    const countBy = <T>(items: T[], key: (t: T) => string): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
      return out;
    };
    // Leftovers that belong to no container or pod (docs/gc.md): now, before the CRI socket
    // opens (so nothing can be in flight), then every minute.
    const sandboxIds = (): Set<string> => new Set(store.listSandboxes().map((s) => s.config.id));
    const network = new NetworkReconciler({
      sandboxIds,
      netns,
      cni,
      log: log.child({ component: 'network-reconciler' }),
      onLeak: (kind) => {
        if (kind !== 'ipam') metrics.netnsLeaked.inc({ kind });
      },
    });
    const defaultRuntime = config.runtimes[config.default_runtime];
    const orphans = new OrphanReconciler({
      collectors: [
        containerOrphans(
          {
            runtimePath: defaultRuntime?.path ?? '/usr/sbin/runc',
            runtimeRoot: paths.runcRoot,
            systemdCgroup: config.cgroup_driver === 'systemd',
            bundlesDir: paths.bundlesDir,
            containersDir: paths.containersDir,
            exitsDir: paths.exitsDir,
            attachDir: paths.attachDir,
            execDir: paths.execDir,
          },
          {
            containerIds: () => new Set(store.listContainers().map((c) => c.config.id)),
            log: log.child({ component: 'orphans' }),
          },
        ),
        new PodOrphans({ podsDir: paths.podsDir, sandboxIds, podFiles }),
        network,
        staleTempFiles('cni-cache-temps', paths.cniResultsDir, /^\.tmp-.+-[0-9a-f]+$|^\..+\.tmp$/),
        staleTempFiles('pod-cidr-temp', dirname(paths.podCidrFile), /^pod-cidr\.tmp$/),
        { name: 'images', collect: (pass) => images.collectOrphans(pass, paths.tmpDir) },
      ],
      log: log.child({ component: 'orphans' }),
      onRemoved: (kind) => {
        metrics.orphansCleaned.inc({ kind });
      },
    });
    await orphans.runOnce({ startup: true });
    orphans.start(ORPHAN_RECONCILE_INTERVAL_MS);
    undo.push(() => {
      orphans.stop();
      return Promise.resolve();
    });

    metrics.countObjects({
      containers: () => countBy(store.listContainers(), (c) => c.state.state),
      pods: () => countBy(store.listSandboxes(), (p) => p.state.state),
    });

    const streaming = new StreamingServer(
      {
        containers,
        sandboxes,
        log: log.child({ component: 'streaming' }),
        observer: {
          sessionStarted: (kind) => {
            metrics.streamingSessions.inc({ kind });
          },
          sessionEnded: (kind) => {
            metrics.streamingSessions.dec({ kind });
          },
          bytes: (kind, direction, n) => {
            metrics.streamingBytes.inc({ kind, direction }, n);
          },
        },
      },
      {
        address: config.streaming.address,
        port: config.streaming.port,
        tlsCertFile: config.streaming.tls_cert_file || undefined,
        tlsKeyFile: config.streaming.tls_key_file || undefined,
        tokenTtlMs: config.streaming.token_ttl_seconds * 1000,
        idleTimeoutMs: config.streaming.idle_timeout_seconds * 1000,
      },
    );
    await streaming.start();
    undo.push(() => streaming.close());

    const ctx: CriContext = {
      log,
      metrics,
      inflight,
      runtime: runtimeInfo(config, verboseInfo, mountSetattr, cni),
      images,
      sandboxes,
      containers,
      streaming,
    };

    let metricsServer: MetricsServer | undefined;
    if (config.metrics_address !== '') {
      metricsServer = await startMetricsServer({
        address: config.metrics_address,
        registry: metrics.registry,
        log,
        debugState: () => ({
          version: CRISP_VERSION,
          pid: process.pid,
          configDigest: digest,
          uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
          inflight: inflight.snapshot(),
          store: store.stats(),
          images: images.debugState(),
          pods: sandboxes.list().map((v) => ({
            id: v.sandbox.config.id,
            name: `${v.sandbox.config.namespace}/${v.sandbox.config.name}`,
            state: v.sandbox.state.state,
            ready: v.ready,
          })),
          containers: containers.list().map((c) => ({
            id: c.config.id,
            pod: c.config.sandboxId,
            kind: c.config.kind,
            name: c.config.name,
            state: c.state.state,
            pid: c.state.pid ?? null,
          })),
        }),
      });
      const ms = metricsServer;
      undo.push(() => ms.close());
    }

    const cri: CriServer = await startCriServer(ctx, config.listen, { gid: socketGid });
    undo.push(async () => {
      const pending = inflight.snapshot();
      if (pending.length > 0) log.info({ inflight: pending }, 'waiting for in-flight RPCs');
      const { forced } = await cri.shutdown(SHUTDOWN_GRACE_MS);
      if (forced)
        log.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'in-flight RPCs did not finish in time; cancelled them');
    });
    // Runs just before the CRI shutdown above: event streams never end by themselves, so end
    // them (UNAVAILABLE) and let their handlers finish, or shutdown would wait out its grace.
    undo.push(async () => {
      events.close();
      await new Promise<void>((resolve) => setImmediate(resolve));
    });

    await rm(paths.adminSocket, { force: true });
    const admin = await startAdminServer(paths.adminSocket, { images, scratchDir: paths.tmpDir, log });
    undo.push(async () => {
      await admin.close();
      await rm(paths.adminSocket, { force: true });
    });

    await mkdir(dirname(paths.pidFile), { recursive: true });
    await writeFile(paths.pidFile, `${process.pid}\n`);
    undo.push(() => rm(paths.pidFile, { force: true }));

    log.info(
      {
        listen: config.listen,
        metricsAddress: metricsServer?.address ?? null,
        version: CRISP_VERSION,
        toRecover: { containers: containers.uncheckedCount },
      },
      'crisp is ready',
    );
    // Recovery runs while crisp serves: reads answer from the store at once, and an object still
    // to be checked is worked on only after its check (its lock). Shutdown waits for it.
    const recovering = recover({ containers, sandboxes, metrics, log }).catch((err: unknown) => {
      log.error({ err }, 'recovery failed');
    });
    undo.push(() => recovering);
    let stopping: Promise<void> | undefined;
    return {
      metricsAddress: metricsServer?.address,
      stop: () => (stopping ??= unwind(log, undo)),
    };
  } catch (err) {
    await unwind(log, undo);
    throw err;
  }
}
