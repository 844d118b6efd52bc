/**
 * Pure conversions from pod and container statistics (container/stats.ts) to the CRI metrics of
 * ListPodSandboxMetrics, the descriptors ListMetricDescriptors announces, and the paging of the
 * Stream form.
 *
 * Names, types and units are cAdvisor's (what kubelet serves on /metrics/cadvisor), so that
 * kubelet can serve these instead. The label keys are CRI-O's and containerd's (id, image,
 * namespace, pod, container), plus `interface` for network, `cpu` for CPU time and
 * `failure_type`, `scope` for page faults; every metric's label values follow its descriptor's
 * keys, as kubelet requires. Only what the stats reader actually reads is reported: a value it
 * could not read is left out, never sent as zero.
 */
import type { ContainerMetrics } from '../../generated/runtime/v1/ContainerMetrics.js';
import type { Metric } from '../../generated/runtime/v1/Metric.js';
import type { MetricDescriptor } from '../../generated/runtime/v1/MetricDescriptor.js';
import type { PodSandboxMetrics } from '../../generated/runtime/v1/PodSandboxMetrics.js';
import type {
  ContainerStatsSample,
  CpuSample,
  MemorySample,
  NetworkSample,
  PodStatsSample,
  ProcessSample,
  SwapSample,
} from '../../container/stats.js';
import type { StoredContainer } from '../../container/manager.js';
import { STATS_PAGE_BYTES, STATS_PAGE_ITEMS } from './stats.js';

/** The keys every metric starts with. */
export const METRIC_BASE_LABEL_KEYS = ['id', 'image', 'namespace', 'pod', 'container'] as const;

interface MetricSpec {
  type: 'COUNTER' | 'GAUGE';
  /** Label keys after the base ones. */
  extra: readonly string[];
  help: string;
}

const SPECS = {
  container_cpu_usage_seconds_total: {
    type: 'COUNTER',
    extra: ['cpu'],
    help: 'CPU time used by the tasks of the cgroup, in whole seconds (cpu is always "total").',
  },
  container_memory_usage_bytes: {
    type: 'GAUGE',
    extra: [],
    help: 'Memory charged to the cgroup in bytes, page cache included.',
  },
  container_memory_working_set_bytes: {
    type: 'GAUGE',
    extra: [],
    help: 'Memory usage minus inactive file pages, in bytes: what eviction and the OOM killer go by.',
  },
  container_memory_rss: {
    type: 'GAUGE',
    extra: [],
    help: 'Anonymous memory of the cgroup in bytes (anon on cgroup v2, total_rss on v1).',
  },
  container_memory_swap: {
    type: 'GAUGE',
    extra: [],
    help: 'Swap used by the cgroup, in bytes.',
  },
  container_memory_failures_total: {
    type: 'COUNTER',
    extra: ['failure_type', 'scope'],
    help: 'Page faults in the cgroup: failure_type pgfault or pgmajfault; scope container or hierarchy.',
  },
  container_network_receive_bytes_total: {
    type: 'COUNTER',
    extra: ['interface'],
    help: 'Bytes received on an interface of the pod network namespace.',
  },
  container_network_receive_errors_total: {
    type: 'COUNTER',
    extra: ['interface'],
    help: 'Receive errors on an interface of the pod network namespace.',
  },
  container_network_transmit_bytes_total: {
    type: 'COUNTER',
    extra: ['interface'],
    help: 'Bytes sent on an interface of the pod network namespace.',
  },
  container_network_transmit_errors_total: {
    type: 'COUNTER',
    extra: ['interface'],
    help: 'Transmit errors on an interface of the pod network namespace.',
  },
  container_processes: {
    type: 'GAUGE',
    extra: [],
    help: 'Tasks in the cgroup, as its pids controller counts them (threads included).',
  },
} as const satisfies Record<string, MetricSpec>;

export type MetricName = keyof typeof SPECS;

/** A string for each element of a tuple. */
type Strings<T extends readonly string[]> = { -readonly [I in keyof T]: string };
/** One value per extra label key of metric N, in the descriptor's order. */
type ExtraValues<N extends MetricName> = Strings<(typeof SPECS)[N]['extra']>;

/** Every metric crisp reports, in a stable order (what ListMetricDescriptors answers). */
export const METRIC_DESCRIPTORS: readonly MetricDescriptor[] = Object.entries(SPECS).map(
  ([name, spec]: [string, MetricSpec]) => ({
    name,
    help: spec.help,
    label_keys: [...METRIC_BASE_LABEL_KEYS, ...spec.extra],
  }),
);

const SECOND_NS = 1_000_000_000n;

/** Collects the metrics of one pod or container: same base label values, one timestamp per sample. */
class MetricList {
  readonly metrics: Metric[] = [];

  constructor(private readonly base: readonly string[]) {}

  add<N extends MetricName>(
    name: N,
    timestampNs: bigint,
    value: bigint | undefined,
    ...extra: ExtraValues<N>
  ): void {
    if (value === undefined) return;
    this.metrics.push({
      name,
      timestamp: timestampNs.toString(),
      metric_type: SPECS[name].type,
      label_values: [...this.base, ...extra],
      value: { value: value.toString() },
    });
  }
}

type FaultScope = 'container' | 'hierarchy';

function addCpu(out: MetricList, s: CpuSample | undefined): void {
  if (!s) return;
  // The proto carries whole numbers: seconds are truncated, as CRI-O and containerd do.
  out.add('container_cpu_usage_seconds_total', s.timestampNs, s.usageCoreNs / SECOND_NS, 'total');
}

/**
 * The fault counters crisp reads are the cgroup's hierarchical ones (memory.stat on v2, the
 * total_ keys on v1). For a container, a leaf cgroup, that is also its own ("container")
 * count; for a pod, only "hierarchy" is true.
 */
function addMemory(out: MetricList, s: MemorySample | undefined, scopes: readonly FaultScope[]): void {
  if (!s) return;
  const t = s.timestampNs;
  out.add('container_memory_usage_bytes', t, s.usageBytes);
  out.add('container_memory_working_set_bytes', t, s.workingSetBytes);
  out.add('container_memory_rss', t, s.rssBytes);
  for (const scope of scopes) {
    out.add('container_memory_failures_total', t, s.pageFaults, 'pgfault', scope);
    out.add('container_memory_failures_total', t, s.majorPageFaults, 'pgmajfault', scope);
  }
}

function addSwap(out: MetricList, s: SwapSample | undefined): void {
  if (s) out.add('container_memory_swap', s.timestampNs, s.usageBytes);
}

function addProcesses(out: MetricList, s: ProcessSample | undefined): void {
  if (s) out.add('container_processes', s.timestampNs, s.count);
}

function addNetwork(out: MetricList, s: NetworkSample | undefined): void {
  if (!s) return;
  const t = s.timestampNs;
  for (const i of s.interfaces) {
    out.add('container_network_receive_bytes_total', t, i.rxBytes, i.name);
    out.add('container_network_receive_errors_total', t, i.rxErrors, i.name);
    out.add('container_network_transmit_bytes_total', t, i.txBytes, i.name);
    out.add('container_network_transmit_errors_total', t, i.txErrors, i.name);
  }
}

/** What the labels need to know about a pod (a SandboxConfigRecord has it). */
export interface MetricsPod {
  id: string;
  name: string;
  namespace: string;
}

export function toContainerMetrics(
  pod: MetricsPod,
  c: StoredContainer,
  s: ContainerStatsSample,
): ContainerMetrics {
  const out = new MetricList([c.config.id, c.config.image, pod.namespace, pod.name, c.config.name]);
  addCpu(out, s.cpu);
  addMemory(out, s.memory, ['container', 'hierarchy']);
  addSwap(out, s.swap);
  addProcesses(out, s.process);
  return { container_id: c.config.id, metrics: out.metrics };
}

/**
 * A pod's metrics: its totals (the pod cgroup, or its containers' sums) and its network
 * namespace's interfaces under the pod id, with image and container empty as cAdvisor labels
 * a pod cgroup (so `container!=""` selectors skip the totals); then each container's own.
 */
export function toPodSandboxMetrics(pod: MetricsPod, s: PodStatsSample): PodSandboxMetrics {
  const out = new MetricList([pod.id, '', pod.namespace, pod.name, '']);
  addCpu(out, s.cpu);
  addMemory(out, s.memory, ['hierarchy']);
  addProcesses(out, s.process);
  addNetwork(out, s.network);
  return {
    pod_sandbox_id: pod.id,
    metrics: out.metrics,
    container_metrics: s.containers.map(({ container, stats }) => toContainerMetrics(pod, container, stats)),
  };
}

// --- paging --------------------------------------------------------------------------------------

/** Field tags, length prefixes and varints around the strings: generous, never too small. */
const FRAMING_BYTES = 16;

const strBytes = (s: string | undefined): number => Buffer.byteLength(s ?? '') + 6;

/** An upper bound of a Metric's encoded size. */
export function metricSize(m: Metric): number {
  let n = FRAMING_BYTES + 24 + strBytes(m.name); // + timestamp, type and value
  for (const v of m.label_values ?? []) n += strBytes(v);
  return n;
}

function containerMetricsSize(c: ContainerMetrics): number {
  return (c.metrics ?? []).reduce((n, m) => n + metricSize(m), FRAMING_BYTES + strBytes(c.container_id));
}

/** An upper bound of a PodSandboxMetrics' encoded size. */
export function podSandboxMetricsSize(p: PodSandboxMetrics): number {
  let n = FRAMING_BYTES + strBytes(p.pod_sandbox_id);
  for (const m of p.metrics ?? []) n += metricSize(m);
  for (const c of p.container_metrics ?? []) n += containerMetricsSize(c);
  return n;
}

/**
 * Splits a pod whose metrics exceed `maxBytes` into several PodSandboxMetrics with the same id
 * (kubelet reads each entry on its own, so a split pod reads as a whole one). A container's
 * metrics are never split: there are a dozen at most.
 */
export function splitPodSandboxMetrics(p: PodSandboxMetrics, maxBytes: number): PodSandboxMetrics[] {
  if (podSandboxMetricsSize(p) <= maxBytes) return [p];
  const id = p.pod_sandbox_id ?? '';
  const parts: PodSandboxMetrics[] = [];
  const fixed = FRAMING_BYTES + strBytes(id);
  let part: { metrics: Metric[]; containers: ContainerMetrics[] } = { metrics: [], containers: [] };
  let bytes = fixed;
  const room = (size: number): void => {
    if (bytes + size <= maxBytes || (part.metrics.length === 0 && part.containers.length === 0)) return;
    parts.push({ pod_sandbox_id: id, metrics: part.metrics, container_metrics: part.containers });
    part = { metrics: [], containers: [] };
    bytes = fixed;
  };
  for (const m of p.metrics ?? []) {
    const size = metricSize(m);
    room(size);
    part.metrics.push(m);
    bytes += size;
  }
  for (const c of p.container_metrics ?? []) {
    const size = containerMetricsSize(c);
    room(size);
    part.containers.push(c);
    bytes += size;
  }
  parts.push({ pod_sandbox_id: id, metrics: part.metrics, container_metrics: part.containers });
  return parts;
}

/**
 * Pods' metrics in messages of at most `maxItems` entries and (estimated) `maxBytes`, a pod too
 * big for one message split over several; kubelet's limit is 16 MiB a message.
 */
export function podSandboxMetricsPages(
  pods: readonly PodSandboxMetrics[],
  maxBytes = STATS_PAGE_BYTES,
  maxItems = STATS_PAGE_ITEMS,
): PodSandboxMetrics[][] {
  const pages: PodSandboxMetrics[][] = [];
  let page: PodSandboxMetrics[] = [];
  let bytes = 0;
  for (const entry of pods.flatMap((p) => splitPodSandboxMetrics(p, maxBytes))) {
    const size = podSandboxMetricsSize(entry);
    if (page.length > 0 && (page.length >= maxItems || bytes + size > maxBytes)) {
      pages.push(page);
      page = [];
      bytes = 0;
    }
    page.push(entry);
    bytes += size;
  }
  if (page.length > 0) pages.push(page);
  return pages;
}
