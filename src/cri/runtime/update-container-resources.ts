/** UpdateContainerResources: new limits for a live container (runc update), reported afterwards. */
import type { UpdateContainerResourcesRequest__Output } from '../../generated/runtime/v1/UpdateContainerResourcesRequest.js';
import type { UpdateContainerResourcesResponse } from '../../generated/runtime/v1/UpdateContainerResourcesResponse.js';
import type { ContainerManager } from '../../container/manager.js';
import type { JsonValue } from '../../sandbox/manager.js';
import { resourcesFromCri } from '../convert/resources.js';
import type { UnaryImpl } from '../handler.js';
import { checkAnnotations, requireId } from '../limits.js';
import { requireMessage } from '../validate.js';

export function updateContainerResources(
  containers: ContainerManager,
): UnaryImpl<UpdateContainerResourcesRequest__Output, UpdateContainerResourcesResponse> {
  return async (req) => {
    const id = requireId(req.container_id, 'container_id');
    const linux = requireMessage(req.linux, 'linux');
    const input = resourcesFromCri(linux, 'linux');
    checkAnnotations(req.annotations, 'annotations');
    await containers.updateResources(id, input, JSON.parse(JSON.stringify(linux)) as JsonValue);
    return {};
  };
}
