/**
 * PodSandboxStats, ListPodSandboxStats and StreamPodSandboxStats: a pod's CPU, memory and
 * process count (its cgroup when it has a cgroup parent, else the sum of its containers'), the
 * network counters of its namespace, and the stats of its running application containers.
 *
 * Only ready pods have stats: the lists leave the others out, and PodSandboxStats answers
 * FAILED_PRECONDITION for a pod that is not ready (NOT_FOUND for an unknown id).
 */
import type { ListPodSandboxStatsRequest__Output } from '../../generated/runtime/v1/ListPodSandboxStatsRequest.js';
import type { ListPodSandboxStatsResponse } from '../../generated/runtime/v1/ListPodSandboxStatsResponse.js';
import type { PodSandboxStats } from '../../generated/runtime/v1/PodSandboxStats.js';
import type { PodSandboxStatsRequest__Output } from '../../generated/runtime/v1/PodSandboxStatsRequest.js';
import type { PodSandboxStatsResponse } from '../../generated/runtime/v1/PodSandboxStatsResponse.js';
import type { StreamPodSandboxStatsRequest__Output } from '../../generated/runtime/v1/StreamPodSandboxStatsRequest.js';
import type { StreamPodSandboxStatsResponse } from '../../generated/runtime/v1/StreamPodSandboxStatsResponse.js';
import type { ContainerManager, StoredContainer } from '../../container/manager.js';
import { hasLiveCgroup, type StatsReader } from '../../container/stats.js';
import { FailedPreconditionError } from '../../errors.js';
import type { SandboxManager, SandboxView } from '../../sandbox/manager.js';
import {
  podSandboxStatsMatches,
  statsPages,
  statsSizeEstimate,
  toPodSandboxStats,
} from '../convert/stats.js';
import { checkFilter } from '../checks.js';
import type { StreamImpl, UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';
import { mapLimit } from '../../util/map-limit.js';

/** Running application containers, by pod id. */
export function runningAppsByPod(containers: Pick<ContainerManager, 'list'>): Map<string, StoredContainer[]> {
  const byPod = new Map<string, StoredContainer[]>();
  for (const c of containers.list()) {
    if (c.config.kind !== 'app' || !hasLiveCgroup(c)) continue;
    const list = byPod.get(c.config.sandboxId);
    if (list) list.push(c);
    else byPod.set(c.config.sandboxId, [c]);
  }
  return byPod;
}

/** One sample of a pod and its running app containers (also what the metrics RPCs report). */
export function readPodSample(
  view: SandboxView,
  apps: StoredContainer[],
  reader: Pick<StatsReader, 'readPodStats'>,
): ReturnType<StatsReader['readPodStats']> {
  const c = view.sandbox.config;
  return reader.readPodStats({
    sandboxId: c.id,
    cgroupParent: c.cgroupParent,
    hostNetwork: c.hostNetwork,
    infra: view.infra,
    containers: apps,
  });
}

async function statsOf(
  view: SandboxView,
  apps: StoredContainer[],
  reader: StatsReader,
): Promise<PodSandboxStats> {
  return toPodSandboxStats(view, await readPodSample(view, apps, reader));
}

export function podSandboxStats(
  sandboxes: SandboxManager,
  containers: ContainerManager,
  reader: StatsReader,
): UnaryImpl<PodSandboxStatsRequest__Output, PodSandboxStatsResponse> {
  return async (req) => {
    const view = await sandboxes.status(requireId(req.pod_sandbox_id, 'pod_sandbox_id'));
    const id = view.sandbox.config.id;
    if (!view.ready) {
      throw new FailedPreconditionError(
        `pod sandbox "${id}" is not ready (${view.sandbox.state.state}, infra container ${view.infra?.state.state ?? 'missing'}): statistics are only available for a ready pod`,
        { details: { sandboxId: id } },
      );
    }
    const apps = runningAppsByPod(containers).get(id) ?? [];
    return { stats: await statsOf(view, apps, reader) };
  };
}

/** Pods read at once by the list RPCs (each reads its containers concurrently too). */
const POD_CONCURRENCY = 8;

async function readPods(
  views: SandboxView[],
  byPod: Map<string, StoredContainer[]>,
  reader: StatsReader,
): Promise<PodSandboxStats[]> {
  return mapLimit(views, POD_CONCURRENCY, (v) => statsOf(v, byPod.get(v.sandbox.config.id) ?? [], reader));
}

export function listPodSandboxStats(
  sandboxes: SandboxManager,
  containers: ContainerManager,
  reader: StatsReader,
): UnaryImpl<ListPodSandboxStatsRequest__Output, ListPodSandboxStatsResponse> {
  return async (req) => {
    checkFilter(req.filter);
    const views = sandboxes.list().filter((v) => podSandboxStatsMatches(v, req.filter));
    return { stats: await readPods(views, runningAppsByPod(containers), reader) };
  };
}

/** Pages are read and sent one at a time, so the first arrives before the last is read. */
export function streamPodSandboxStats(
  sandboxes: SandboxManager,
  containers: ContainerManager,
  reader: StatsReader,
): StreamImpl<StreamPodSandboxStatsRequest__Output, StreamPodSandboxStatsResponse> {
  return async (req, send, { signal }) => {
    checkFilter(req.filter);
    const views = sandboxes.list().filter((v) => podSandboxStatsMatches(v, req.filter));
    const byPod = runningAppsByPod(containers);
    const sizeOf = (v: SandboxView): number =>
      statsSizeEstimate(
        v.sandbox.config,
        (byPod.get(v.sandbox.config.id) ?? []).reduce((n, c) => n + statsSizeEstimate(c.config), 0),
      );
    const pages = statsPages(views, sizeOf);
    if (pages.length === 0) send({ pod_sandbox_stats: [] });
    for (const page of pages) {
      if (signal.aborted) return;
      send({ pod_sandbox_stats: await readPods(page, byPod, reader) });
    }
  };
}
