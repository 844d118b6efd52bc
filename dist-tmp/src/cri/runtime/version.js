/** The kubelet-facing API version string every CRI runtime reports. */
const KUBELET_API_VERSION = '0.1.0';
export function version(runtime) {
    return () => Promise.resolve({
        version: KUBELET_API_VERSION,
        runtime_name: 'crisp',
        runtime_version: runtime.runtimeVersion,
        runtime_api_version: 'v1',
    });
}
//# sourceMappingURL=version.js.map