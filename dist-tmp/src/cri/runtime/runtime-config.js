export function runtimeConfig(runtime) {
    return () => Promise.resolve({
        linux: { cgroup_driver: runtime.cgroupDriver === 'systemd' ? 'SYSTEMD' : 'CGROUPFS' },
    });
}
//# sourceMappingURL=runtime-config.js.map