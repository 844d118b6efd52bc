/**
 * ContainerStats, ListContainerStats and StreamContainerStats: CPU, memory, swap and writable
 * layer of application containers, read from their cgroups and upper dirs (container/stats.ts).
 *
 * As containerd does, only running containers (paused included) have stats: the lists leave the
 * others out, and ContainerStats answers FAILED_PRECONDITION for a container that does not run
 * (NOT_FOUND for an unknown id).
 */
import type { ContainerStatsRequest__Output } from '../../generated/runtime/v1/ContainerStatsRequest.js';
import type { ContainerStatsResponse } from '../../generated/runtime/v1/ContainerStatsResponse.js';
import type { ListContainerStatsRequest__Output } from '../../generated/runtime/v1/ListContainerStatsRequest.js';
import type { ListContainerStatsResponse } from '../../generated/runtime/v1/ListContainerStatsResponse.js';
import type { StreamContainerStatsRequest__Output } from '../../generated/runtime/v1/StreamContainerStatsRequest.js';
import type { StreamContainerStatsResponse } from '../../generated/runtime/v1/StreamContainerStatsResponse.js';
import type { ContainerManager } from '../../container/manager.js';
import { hasLiveCgroup, type StatsReader } from '../../container/stats.js';
import { FailedPreconditionError } from '../../errors.js';
import { containerStatsMatches, statsPages, statsSizeEstimate, toContainerStats } from '../convert/stats.js';
import { checkFilter } from '../checks.js';
import type { StreamImpl, UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';
import { refreshedAppContainer } from './container-status.js';

export function containerStats(
  containers: ContainerManager,
  reader: StatsReader,
): UnaryImpl<ContainerStatsRequest__Output, ContainerStatsResponse> {
  return async (req) => {
    const c = await refreshedAppContainer(containers, requireId(req.container_id, 'container_id'));
    if (!hasLiveCgroup(c)) {
      throw new FailedPreconditionError(
        `container "${c.config.id}" is ${c.state.state}: statistics are only available while it runs`,
        { details: { containerId: c.config.id, state: c.state.state } },
      );
    }
    return { stats: toContainerStats(c, await reader.readContainerStats(c)) };
  };
}

export function listContainerStats(
  containers: ContainerManager,
  reader: StatsReader,
): UnaryImpl<ListContainerStatsRequest__Output, ListContainerStatsResponse> {
  return async (req) => {
    checkFilter(req.filter);
    const matching = containers.list().filter((c) => containerStatsMatches(c, req.filter));
    const samples = await reader.readContainersStats(matching);
    return {
      stats: matching.flatMap((c, i) => {
        const s = samples[i];
        return s ? [toContainerStats(c, s)] : [];
      }),
    };
  };
}

/** Pages are read and sent one at a time, so the first arrives before the last is read. */
export function streamContainerStats(
  containers: ContainerManager,
  reader: StatsReader,
): StreamImpl<StreamContainerStatsRequest__Output, StreamContainerStatsResponse> {
  return async (req, send, { signal }) => {
    checkFilter(req.filter);
    const matching = containers.list().filter((c) => containerStatsMatches(c, req.filter));
    const pages = statsPages(matching, (c) => statsSizeEstimate(c.config));
    if (pages.length === 0) send({ container_stats: [] });
    for (const page of pages) {
      if (signal.aborted) return;
      const samples = await reader.readContainersStats(page);
      send({
        container_stats: page.flatMap((c, i) => {
          const s = samples[i];
          return s ? [toContainerStats(c, s)] : [];
        }),
      });
    }
  };
}
