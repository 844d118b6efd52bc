/** StopContainer: stop signal, SIGKILL after `timeout` seconds (0: at once); idempotent. */
import type { StopContainerRequest__Output } from '../../generated/runtime/v1/StopContainerRequest.js';
import type { StopContainerResponse } from '../../generated/runtime/v1/StopContainerResponse.js';
import type { ContainerManager } from '../../container/manager.js';
import { InvalidArgumentError } from '../../errors.js';
import type { UnaryImpl } from '../handler.js';
import { requireString } from '../validate.js';

export function stopContainer(
  containers: ContainerManager,
): UnaryImpl<StopContainerRequest__Output, StopContainerResponse> {
  return async (req) => {
    const id = requireString(req.container_id, 'container_id');
    const timeout = Number(req.timeout);
    if (!Number.isSafeInteger(timeout) || timeout < 0) {
      throw new InvalidArgumentError(
        'timeout',
        `must be a non-negative number of seconds, got ${req.timeout}`,
      );
    }
    // Unknown containers are fine: StopContainer is idempotent.
    if (!containers.find(id)) return {};
    await containers.stop(id, timeout);
    return {};
  };
}
