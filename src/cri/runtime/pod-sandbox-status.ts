/** PodSandboxStatus: NOT_FOUND for unknown ids; verbose adds what crisp knows. */
import type { PodSandboxStatusRequest__Output } from '../../generated/runtime/v1/PodSandboxStatusRequest.js';
import type { PodSandboxStatusResponse } from '../../generated/runtime/v1/PodSandboxStatusResponse.js';
import type { SandboxManager } from '../../sandbox/manager.js';
import { sandboxVerboseInfo, toPodSandboxStatus } from '../convert/sandbox.js';
import type { UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';

export function podSandboxStatus(
  sandboxes: SandboxManager,
): UnaryImpl<PodSandboxStatusRequest__Output, PodSandboxStatusResponse> {
  return async (req) => {
    const view = await sandboxes.status(requireId(req.pod_sandbox_id, 'pod_sandbox_id'));
    return {
      status: toPodSandboxStatus(view),
      info: req.verbose ? sandboxVerboseInfo(view) : {},
      containers_statuses: [],
      timestamp: (BigInt(Date.now()) * 1_000_000n).toString(),
    };
  };
}
