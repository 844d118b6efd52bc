/** RuntimeConfig: settings the kubelet must agree with; today the cgroup driver. */
import type { RuntimeConfigRequest__Output } from '../../generated/runtime/v1/RuntimeConfigRequest.js';
import type { RuntimeConfigResponse } from '../../generated/runtime/v1/RuntimeConfigResponse.js';
import type { RuntimeInfo } from '../context.js';
import type { UnaryImpl } from '../handler.js';

export function runtimeConfig(
  runtime: RuntimeInfo,
): UnaryImpl<RuntimeConfigRequest__Output, RuntimeConfigResponse> {
  return () =>
    Promise.resolve({
      linux: { cgroup_driver: runtime.cgroupDriver === 'systemd' ? 'SYSTEMD' : 'CGROUPFS' },
    });
}
