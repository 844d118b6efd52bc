function condition(type, r) {
    return { type, status: r.ready, reason: r.ready ? '' : r.reason, message: r.ready ? '' : r.message };
}
export function status(runtime) {
    return async (req) => {
        const [runtimeReady, networkReady] = await Promise.all([runtime.runtimeReady(), runtime.networkReady()]);
        const info = {};
        if (req.verbose) {
            for (const [key, value] of Object.entries(runtime.verboseInfo()))
                info[key] = JSON.stringify(value);
        }
        return {
            status: { conditions: [condition('RuntimeReady', runtimeReady), condition('NetworkReady', networkReady)] },
            info,
            runtime_handlers: runtime.handlers.map((h) => ({
                name: h.name,
                features: { recursive_read_only_mounts: h.recursiveReadOnlyMounts, user_namespaces: h.userNamespaces },
            })),
            features: { supplemental_groups_policy: runtime.supplementalGroupsPolicy, user_namespaces_host_network: false },
        };
    };
}
//# sourceMappingURL=status.js.map