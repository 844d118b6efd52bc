/** UpdatePodSandboxResources: a pod's new resources after an in-place resize, into its cgroup. */
import type { UpdatePodSandboxResourcesRequest__Output } from '../../generated/runtime/v1/UpdatePodSandboxResourcesRequest.js';
import type { UpdatePodSandboxResourcesResponse } from '../../generated/runtime/v1/UpdatePodSandboxResourcesResponse.js';
import type { JsonValue, SandboxManager } from '../../sandbox/manager.js';
import { resourcesFromCri } from '../convert/resources.js';
import type { UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';

export function updatePodSandboxResources(
  sandboxes: SandboxManager,
): UnaryImpl<UpdatePodSandboxResourcesRequest__Output, UpdatePodSandboxResourcesResponse> {
  return async (req) => {
    const id = requireId(req.pod_sandbox_id, 'pod_sandbox_id');
    const resources = req.resources ? resourcesFromCri(req.resources, 'resources') : undefined;
    const overhead = req.overhead ? resourcesFromCri(req.overhead, 'overhead') : undefined;
    const asReceived = JSON.parse(
      JSON.stringify({ resources: req.resources, overhead: req.overhead }),
    ) as JsonValue;
    await sandboxes.updateResources(id, resources, overhead, asReceived);
    return {};
  };
}
