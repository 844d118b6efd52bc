/** RemovePodSandbox: idempotent; an unknown id is not an error. */
import type { RemovePodSandboxRequest__Output } from '../../generated/runtime/v1/RemovePodSandboxRequest.js';
import type { RemovePodSandboxResponse } from '../../generated/runtime/v1/RemovePodSandboxResponse.js';
import type { SandboxManager } from '../../sandbox/manager.js';
import type { UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';

export function removePodSandbox(
  sandboxes: SandboxManager,
): UnaryImpl<RemovePodSandboxRequest__Output, RemovePodSandboxResponse> {
  return async (req) => {
    await sandboxes.remove(requireId(req.pod_sandbox_id, 'pod_sandbox_id'));
    return {};
  };
}
