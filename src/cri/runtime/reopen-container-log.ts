/** ReopenContainerLog: after kubelet rotated the log file. */
import type { ReopenContainerLogRequest__Output } from '../../generated/runtime/v1/ReopenContainerLogRequest.js';
import type { ReopenContainerLogResponse } from '../../generated/runtime/v1/ReopenContainerLogResponse.js';
import type { ContainerManager } from '../../container/manager.js';
import type { UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';

export function reopenContainerLog(
  containers: ContainerManager,
): UnaryImpl<ReopenContainerLogRequest__Output, ReopenContainerLogResponse> {
  return async (req) => {
    await containers.reopenLog(requireId(req.container_id, 'container_id'));
    return {};
  };
}
