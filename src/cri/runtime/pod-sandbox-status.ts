/**
 * PodSandboxStatus: NOT_FOUND for unknown ids; verbose adds what crisp knows. With the pod come
 * its application containers' statuses and the time they were read, as CRI-O answers when
 * container events are on: a kubelet with evented PLEG takes containers_statuses whenever
 * timestamp is set, so the two always travel together.
 */
import type { ContainerManager } from '../../container/manager.js';
import type { PodSandboxStatusRequest__Output } from '../../generated/runtime/v1/PodSandboxStatusRequest.js';
import type { PodSandboxStatusResponse } from '../../generated/runtime/v1/PodSandboxStatusResponse.js';
import type { SandboxManager } from '../../sandbox/manager.js';
import { toContainerStatus } from '../convert/container.js';
import { sandboxVerboseInfo, toPodSandboxStatus } from '../convert/sandbox.js';
import type { UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';

export function podSandboxStatus(
  sandboxes: SandboxManager,
  containers: ContainerManager,
): UnaryImpl<PodSandboxStatusRequest__Output, PodSandboxStatusResponse> {
  return async (req) => {
    const view = await sandboxes.status(requireId(req.pod_sandbox_id, 'pod_sandbox_id'));
    const podId = view.sandbox.config.id;
    const ids = containers
      .list()
      .filter((c) => c.config.kind === 'app' && c.config.sandboxId === podId)
      .map((c) => c.config.id);
    // Each read as ContainerStatus reads it: an exit the watcher has not reported yet is taken.
    await Promise.all(ids.map((id) => containers.refresh(id)));
    const timestamp = (BigInt(Date.now()) * 1_000_000n).toString();
    const statuses = ids.flatMap((id) => {
      const c = containers.find(id);
      return c ? [toContainerStatus(c)] : [];
    });
    return {
      status: toPodSandboxStatus(view),
      info: req.verbose ? sandboxVerboseInfo(view) : {},
      containers_statuses: statuses,
      timestamp,
    };
  };
}
