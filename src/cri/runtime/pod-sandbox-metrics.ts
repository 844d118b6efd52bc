/**
 * ListMetricDescriptors, ListPodSandboxMetrics and StreamPodSandboxMetrics: the pod and container
 * statistics of container/stats.ts as cAdvisor-named metrics, for a kubelet that takes its
 * /metrics/cadvisor from the runtime (PodAndContainerStatsFromCRI). convert/metrics.ts has the
 * names, types and labels.
 *
 * As for the stats RPCs, only ready pods and their running application containers are
 * reported. The Stream form reads a bounded number of pods at a time and sends them in messages
 * of a few MiB, so a node with thousands of pods stays far below kubelet's 16 MiB limit.
 */
import type { ListMetricDescriptorsRequest__Output } from '../../generated/runtime/v1/ListMetricDescriptorsRequest.js';
import type { ListMetricDescriptorsResponse } from '../../generated/runtime/v1/ListMetricDescriptorsResponse.js';
import type { ListPodSandboxMetricsRequest__Output } from '../../generated/runtime/v1/ListPodSandboxMetricsRequest.js';
import type { ListPodSandboxMetricsResponse } from '../../generated/runtime/v1/ListPodSandboxMetricsResponse.js';
import type { PodSandboxMetrics } from '../../generated/runtime/v1/PodSandboxMetrics.js';
import type { StreamPodSandboxMetricsRequest__Output } from '../../generated/runtime/v1/StreamPodSandboxMetricsRequest.js';
import type { StreamPodSandboxMetricsResponse } from '../../generated/runtime/v1/StreamPodSandboxMetricsResponse.js';
import type { ContainerManager, StoredContainer } from '../../container/manager.js';
import type { StatsReader } from '../../container/stats.js';
import type { SandboxManager, SandboxView } from '../../sandbox/manager.js';
import { METRIC_DESCRIPTORS, podSandboxMetricsPages, toPodSandboxMetrics } from '../convert/metrics.js';
import type { StreamImpl, UnaryImpl } from '../handler.js';
import { readPodSample, runningAppsByPod } from './pod-sandbox-stats.js';
import { mapLimit } from '../../util/map-limit.js';

/** What these RPCs use of the engines. */
export type MetricsSandboxes = Pick<SandboxManager, 'list'>;
export type MetricsContainers = Pick<ContainerManager, 'list'>;
export type MetricsReader = Pick<StatsReader, 'readPodStats'>;

/** Pods read at once (each reads its containers concurrently too). */
const POD_CONCURRENCY = 8;
/** Pods the Stream form reads before it sends them. */
export const STREAM_READ_PODS = 200;

export function listMetricDescriptors(): UnaryImpl<
  ListMetricDescriptorsRequest__Output,
  ListMetricDescriptorsResponse
> {
  return () => Promise.resolve({ descriptors: [...METRIC_DESCRIPTORS] });
}

async function metricsOf(
  view: SandboxView,
  apps: StoredContainer[],
  reader: MetricsReader,
): Promise<PodSandboxMetrics> {
  return toPodSandboxMetrics(view.sandbox.config, await readPodSample(view, apps, reader));
}

/** The pods' metrics in the order given, POD_CONCURRENCY pods at a time. */
async function readPods(
  views: readonly SandboxView[],
  byPod: Map<string, StoredContainer[]>,
  reader: MetricsReader,
): Promise<PodSandboxMetrics[]> {
  return mapLimit(views, POD_CONCURRENCY, (v) => metricsOf(v, byPod.get(v.sandbox.config.id) ?? [], reader));
}

function readyPods(sandboxes: MetricsSandboxes): SandboxView[] {
  return sandboxes.list().filter((v) => v.ready);
}

export function listPodSandboxMetrics(
  sandboxes: MetricsSandboxes,
  containers: MetricsContainers,
  reader: MetricsReader,
): UnaryImpl<ListPodSandboxMetricsRequest__Output, ListPodSandboxMetricsResponse> {
  return async () => ({
    pod_metrics: await readPods(readyPods(sandboxes), runningAppsByPod(containers), reader),
  });
}

/**
 * Reads STREAM_READ_PODS pods, sends them (several messages if they are big), waits for the
 * client to take them if its buffer is full, then reads the next ones. Nothing to report is one
 * empty message.
 */
export function streamPodSandboxMetrics(
  sandboxes: MetricsSandboxes,
  containers: MetricsContainers,
  reader: MetricsReader,
): StreamImpl<StreamPodSandboxMetricsRequest__Output, StreamPodSandboxMetricsResponse> {
  return async (_req, send, scope) => {
    // A function, not a property read: the call can be cancelled during any await.
    const cancelled = (): boolean => scope.signal.aborted;
    const views = readyPods(sandboxes);
    const byPod = runningAppsByPod(containers);
    let sent = false;
    for (let i = 0; i < views.length; i += STREAM_READ_PODS) {
      if (cancelled()) return;
      const pods = await readPods(views.slice(i, i + STREAM_READ_PODS), byPod, reader);
      for (const page of podSandboxMetricsPages(pods)) {
        if (cancelled()) return;
        sent = true;
        if (!send({ pod_sandbox_metrics: page })) await scope.drained();
      }
    }
    if (!sent) send({ pod_sandbox_metrics: [] });
  };
}
