/** StartContainer. */
import type { StartContainerRequest__Output } from '../../generated/runtime/v1/StartContainerRequest.js';
import type { StartContainerResponse } from '../../generated/runtime/v1/StartContainerResponse.js';
import type { ContainerManager } from '../../container/manager.js';
import type { UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';

export function startContainer(
  containers: ContainerManager,
): UnaryImpl<StartContainerRequest__Output, StartContainerResponse> {
  return async (req) => {
    await containers.start(requireId(req.container_id, 'container_id'));
    return {};
  };
}
