/** RemoveContainer: force-stops a running container; idempotent for unknown ids. */
import type { RemoveContainerRequest__Output } from '../../generated/runtime/v1/RemoveContainerRequest.js';
import type { RemoveContainerResponse } from '../../generated/runtime/v1/RemoveContainerResponse.js';
import type { ContainerManager } from '../../container/manager.js';
import { FailedPreconditionError } from '../../errors.js';
import type { UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';

export function removeContainer(
  containers: ContainerManager,
): UnaryImpl<RemoveContainerRequest__Output, RemoveContainerResponse> {
  return async (req) => {
    const id = requireId(req.container_id, 'container_id');
    const c = containers.find(id);
    if (c?.config.kind === 'infra') {
      throw new FailedPreconditionError(
        `container "${id}" is a pod's infra container: remove the pod sandbox instead`,
      );
    }
    await containers.remove(id);
    return {};
  };
}
