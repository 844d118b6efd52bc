/** UpdateRuntimeConfig: kubelet's pod CIDR for this node, handed to CNI configs that ask for it. */
import type { UpdateRuntimeConfigRequest__Output } from '../../generated/runtime/v1/UpdateRuntimeConfigRequest.js';
import type { UpdateRuntimeConfigResponse } from '../../generated/runtime/v1/UpdateRuntimeConfigResponse.js';
import type { SandboxManager } from '../../sandbox/manager.js';
import { parsePodCidrs } from '../../sandbox/pod-cidr.js';
import type { UnaryImpl } from '../handler.js';
import { checkText } from '../limits.js';

export function updateRuntimeConfig(
  sandboxes: SandboxManager,
): UnaryImpl<UpdateRuntimeConfigRequest__Output, UpdateRuntimeConfigResponse> {
  return async (req) => {
    const cidr = checkText(
      req.runtime_config?.network_config?.pod_cidr ?? '',
      'runtime_config.network_config.pod_cidr',
      1024,
    );
    // An empty pod CIDR carries nothing to change (kubelet sends one once the node has it).
    const cidrs = parsePodCidrs(cidr, 'runtime_config.network_config.pod_cidr');
    if (cidrs.length > 0) await sandboxes.setPodCidrs(cidrs);
    return {};
  };
}
