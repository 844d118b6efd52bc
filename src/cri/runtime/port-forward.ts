/** PortForward: check the pod is ready and hand out a single-use streaming URL for it. */
import type { PortForwardRequest__Output } from '../../generated/runtime/v1/PortForwardRequest.js';
import type { PortForwardResponse } from '../../generated/runtime/v1/PortForwardResponse.js';
import type { StreamingServer } from '../../streaming/server.js';
import type { UnaryImpl } from '../handler.js';
import { checkCount, requireId } from '../limits.js';

/** Ports of one PortForward request. */
const MAX_PORTS = 1024;

export function portForward(
  streaming: StreamingServer,
): UnaryImpl<PortForwardRequest__Output, PortForwardResponse> {
  return async (req) => {
    checkCount(req.port, 'port', MAX_PORTS);
    const url = await streaming.portForwardUrl({
      podSandboxId: requireId(req.pod_sandbox_id, 'pod_sandbox_id'),
      ports: req.port,
    });
    return { url };
  };
}
