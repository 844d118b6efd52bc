/** StopPodSandbox: idempotent; an unknown id is not an error. */
import type { StopPodSandboxRequest__Output } from '../../generated/runtime/v1/StopPodSandboxRequest.js';
import type { StopPodSandboxResponse } from '../../generated/runtime/v1/StopPodSandboxResponse.js';
import type { SandboxManager } from '../../sandbox/manager.js';
import type { UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';

export function stopPodSandbox(
  sandboxes: SandboxManager,
): UnaryImpl<StopPodSandboxRequest__Output, StopPodSandboxResponse> {
  return async (req) => {
    await sandboxes.stop(requireId(req.pod_sandbox_id, 'pod_sandbox_id'));
    return {};
  };
}
