/**
 * The daemon's Prometheus registry. Every crisp metric is named crisp_<area>_<thing>_<unit>
 * (docs/metrics.md lists them); Node's default process metrics are registered as well.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface CrispMetrics {
  registry: Registry;
  grpcRequests: Counter<'method' | 'code'>;
  grpcDuration: Histogram<'method'>;
  authorityRepairs: Counter;
  imagePulls: Counter<'result'>;
  imagePullBytes: Counter;
  imagePullDuration: Histogram;
  podStartStage: Histogram<'stage' | 'kind'>;
  containerOoms: Counter;
  stopEscalations: Counter<'step'>;
  cniOperationDuration: Histogram<'op' | 'plugin_type'>;
  netnsLeaked: Counter<'kind'>;
  orphansCleaned: Counter<'kind'>;
  streamingSessions: Gauge<'kind'>;
  streamingBytes: Counter<'kind' | 'direction'>;
  recoveryDuration: Gauge;
  recoveredObjects: Counter<'kind' | 'outcome'>;
  /** Sets where the object gauges (crisp_containers, crisp_pods) read their counts at scrape time. */
  countObjects(source: ObjectCounts): void;
}

/** Counts by state, read when /metrics is scraped (nothing to keep up to date). */
export interface ObjectCounts {
  containers(): Record<string, number>;
  pods(): Record<string, number>;
}

export function createMetrics(): CrispMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const grpcRequests = new Counter({
    name: 'crisp_grpc_requests_total',
    help: 'CRI gRPC requests handled, by method and gRPC status code name.',
    labelNames: ['method', 'code'] as const,
    registers: [registry],
  });
  const grpcDuration = new Histogram({
    name: 'crisp_grpc_request_duration_seconds',
    help: 'Time to answer a CRI gRPC request, by method.',
    labelNames: ['method'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const authorityRepairs = new Counter({
    name: 'crisp_grpc_authority_repairs_total',
    help: 'HTTP/2 header blocks whose invalid :authority (older gRPC clients on unix sockets) crisp replaced.',
    registers: [registry],
  });
  const imagePulls = new Counter({
    name: 'crisp_image_pulls_total',
    help: 'Image pulls finished, by result (success or failure).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const imagePullBytes = new Counter({
    name: 'crisp_image_pull_bytes_total',
    help: 'Layer bytes downloaded from registries.',
    registers: [registry],
  });
  const imagePullDuration = new Histogram({
    name: 'crisp_image_pull_duration_seconds',
    help: 'Time a whole image pull took, successful or not.',
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [registry],
  });
  const podStartStage = new Histogram({
    name: 'crisp_pod_start_stage_duration_seconds',
    help: 'Time spent in each stage of starting and stopping pods and containers (netns, cni, pod_files, rootfs, spec, runtime_create, runtime_start; stop_containers, stop_infra, cni_del), by whose stage it is (pod, infra, app).',
    labelNames: ['stage', 'kind'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const containerOoms = new Counter({
    name: 'crisp_container_oom_total',
    help: 'Containers that ended because the kernel OOM killer killed them.',
    registers: [registry],
  });
  const stopEscalations = new Counter({
    name: 'crisp_container_stop_escalations_total',
    help: 'How far StopContainer had to go: signal (the stop signal sufficed), kill (SIGKILL needed), unstoppable (still alive after SIGKILL).',
    labelNames: ['step'] as const,
    registers: [registry],
  });
  const cniOperationDuration = new Histogram({
    name: 'crisp_cni_operation_duration_seconds',
    help: 'Time one CNI plugin call took, by operation (ADD, DEL, CHECK) and plugin type.',
    labelNames: ['op', 'plugin_type'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const netnsLeaked = new Counter({
    name: 'crisp_netns_leaked_total',
    help: 'Pod networking found belonging to no pod and torn down, by kind: netns (a pinned network namespace) or cni_cache (a CNI attachment).',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const orphansCleaned = new Counter({
    name: 'crisp_orphans_cleaned_total',
    help: 'Leftovers belonging to no container or pod in the store, removed by the orphan reconciler, by kind (conmon, runc, mount, netns, cni_cache, ipam, bundle, container_dir, exec_dir, exit_file, attach, pod_dir, blob, layer, tmp).',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const streamingSessions = new Gauge({
    name: 'crisp_streaming_sessions',
    help: 'Streaming sessions open now, by kind (exec, attach, portforward).',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const streamingBytes = new Counter({
    name: 'crisp_streaming_bytes_total',
    help: 'Bytes carried by streaming sessions, by kind and direction (in: client to container, out: container to client).',
    labelNames: ['kind', 'direction'] as const,
    registers: [registry],
  });
  const recoveryDuration = new Gauge({
    name: 'crisp_recovery_duration_seconds',
    help: 'How long the start-up recovery took to check every container and pod recorded before this start (0 until it is done).',
    registers: [registry],
  });
  const recoveredObjects = new Counter({
    name: 'crisp_recovered_objects_total',
    help: 'Containers and pods checked by the start-up recovery, by kind (container, pod) and outcome (e.g. running, exited-while-down, rolled-back).',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  });
  let source: ObjectCounts | undefined;
  const setFrom = (gauge: Gauge<'state'>, counts: Record<string, number>): void => {
    gauge.reset();
    for (const [state, n] of Object.entries(counts)) gauge.set({ state }, n);
  };
  new Gauge({
    name: 'crisp_containers',
    help: 'Containers by state (libpod states; infra containers included).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      if (source) setFrom(this, source.containers());
    },
  });
  new Gauge({
    name: 'crisp_pods',
    help: 'Pod sandboxes by state (creating, ready, notready).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      if (source) setFrom(this, source.pods());
    },
  });
  return {
    cniOperationDuration,
    netnsLeaked,
    orphansCleaned,
    streamingSessions,
    streamingBytes,
    recoveryDuration,
    recoveredObjects,
    registry,
    grpcRequests,
    grpcDuration,
    authorityRepairs,
    imagePulls,
    imagePullBytes,
    imagePullDuration,
    podStartStage,
    containerOoms,
    stopEscalations,
    countObjects: (s) => {
      source = s;
    },
  };
}
