/** Version: who we are and which CRI API we speak. */
import type { VersionRequest__Output } from '../../generated/runtime/v1/VersionRequest.js';
import type { VersionResponse } from '../../generated/runtime/v1/VersionResponse.js';
import type { RuntimeInfo } from '../context.js';
import type { UnaryImpl } from '../handler.js';

/** The kubelet-facing API version string every CRI runtime reports. */
const KUBELET_API_VERSION = '0.1.0';

export function version(runtime: RuntimeInfo): UnaryImpl<VersionRequest__Output, VersionResponse> {
  return () =>
    Promise.resolve({
      version: KUBELET_API_VERSION,
      runtime_name: 'crisp',
      runtime_version: runtime.runtimeVersion,
      runtime_api_version: 'v1',
    });
}
