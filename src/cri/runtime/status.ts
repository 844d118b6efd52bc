/** Status: readiness conditions, runtime handlers and features; verbose adds JSON details. */
import type { StatusRequest__Output } from '../../generated/runtime/v1/StatusRequest.js';
import type { StatusResponse } from '../../generated/runtime/v1/StatusResponse.js';
import type { RuntimeCondition } from '../../generated/runtime/v1/RuntimeCondition.js';
import type { Readiness, RuntimeInfo } from '../context.js';
import type { UnaryImpl } from '../handler.js';

function condition(type: 'RuntimeReady' | 'NetworkReady', r: Readiness): RuntimeCondition {
  return { type, status: r.ready, reason: r.ready ? '' : r.reason, message: r.ready ? '' : r.message };
}

export function status(runtime: RuntimeInfo): UnaryImpl<StatusRequest__Output, StatusResponse> {
  return async (req) => {
    const [runtimeReady, networkReady] = await Promise.all([runtime.runtimeReady(), runtime.networkReady()]);
    const info: Record<string, string> = {};
    if (req.verbose) {
      for (const [key, value] of Object.entries(runtime.verboseInfo())) info[key] = JSON.stringify(value);
    }
    return {
      status: {
        conditions: [condition('RuntimeReady', runtimeReady), condition('NetworkReady', networkReady)],
      },
      info,
      runtime_handlers: runtime.handlers.map((h) => ({
        name: h.name,
        features: {
          recursive_read_only_mounts: h.recursiveReadOnlyMounts,
          user_namespaces: h.userNamespaces,
        },
      })),
      features: {
        supplemental_groups_policy: runtime.supplementalGroupsPolicy,
        user_namespaces_host_network: false,
      },
    };
  };
}
