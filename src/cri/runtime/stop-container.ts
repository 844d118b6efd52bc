/** StopContainer: stop signal, SIGKILL after `timeout` seconds (0: at once); idempotent. */
import type { StopContainerRequest__Output } from '../../generated/runtime/v1/StopContainerRequest.js';
import type { StopContainerResponse } from '../../generated/runtime/v1/StopContainerResponse.js';
import type { ContainerManager } from '../../container/manager.js';
import type { UnaryImpl } from '../handler.js';
import { requireId, timeoutSeconds } from '../limits.js';

export function stopContainer(
  containers: ContainerManager,
): UnaryImpl<StopContainerRequest__Output, StopContainerResponse> {
  return async (req) => {
    const id = requireId(req.container_id, 'container_id');
    // 0 (or negative): SIGKILL at once.
    const timeout = timeoutSeconds(req.timeout);
    // Unknown containers are fine: StopContainer is idempotent.
    if (!containers.find(id)) return {};
    await containers.stop(id, timeout);
    return {};
  };
}
