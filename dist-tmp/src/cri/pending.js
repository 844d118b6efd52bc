import { UnimplementedError } from '../errors.js';
import { serverStream, unary } from './handler.js';
import { requireMessage, requireString } from './validate.js';
function refusal(service, method, area, version) {
    return new UnimplementedError(`${service}/${method} is not implemented by crisp ${version} yet (${area} have not landed); ` +
        'upgrade crisp or use a runtime that provides it');
}
function pendingUnary(ctx, service, method, area, check) {
    return unary(ctx, method, (req) => {
        check?.(req);
        return Promise.reject(refusal(service, method, area, ctx.runtime.runtimeVersion));
    });
}
function pendingStream(ctx, service, method, area) {
    return serverStream(ctx, method, () => Promise.reject(refusal(service, method, area, ctx.runtime.runtimeVersion)));
}
const sandboxId = (r) => {
    requireString(r.pod_sandbox_id, 'pod_sandbox_id');
};
const containerId = (r) => {
    requireString(r.container_id, 'container_id');
};
const imageRef = (r) => {
    requireString(requireMessage(r.image, 'image').image, 'image.image');
};
const command = (r) => {
    containerId(r);
    if (r.cmd.length === 0)
        requireString('', 'cmd');
};
export function pendingRuntimeHandlers(ctx) {
    const s = 'RuntimeService';
    const pods = 'pod sandboxes';
    const ctrs = 'containers';
    const stream = 'streaming (exec, attach, port-forward)';
    const stats = 'resource statistics';
    return {
        RunPodSandbox: pendingUnary(ctx, s, 'RunPodSandbox', pods, (r) => {
            const config = requireMessage(r.config, 'config');
            requireString(requireMessage(config.metadata, 'config.metadata').name, 'config.metadata.name');
        }),
        StopPodSandbox: pendingUnary(ctx, s, 'StopPodSandbox', pods, sandboxId),
        RemovePodSandbox: pendingUnary(ctx, s, 'RemovePodSandbox', pods, sandboxId),
        PodSandboxStatus: pendingUnary(ctx, s, 'PodSandboxStatus', pods, sandboxId),
        ListPodSandbox: pendingUnary(ctx, s, 'ListPodSandbox', pods),
        StreamPodSandboxes: pendingStream(ctx, s, 'StreamPodSandboxes', pods),
        CreateContainer: pendingUnary(ctx, s, 'CreateContainer', ctrs, (r) => {
            sandboxId(r);
            const config = requireMessage(r.config, 'config');
            requireString(requireMessage(config.metadata, 'config.metadata').name, 'config.metadata.name');
            requireMessage(r.sandbox_config, 'sandbox_config');
        }),
        StartContainer: pendingUnary(ctx, s, 'StartContainer', ctrs, containerId),
        StopContainer: pendingUnary(ctx, s, 'StopContainer', ctrs, containerId),
        RemoveContainer: pendingUnary(ctx, s, 'RemoveContainer', ctrs, containerId),
        ListContainers: pendingUnary(ctx, s, 'ListContainers', ctrs),
        StreamContainers: pendingStream(ctx, s, 'StreamContainers', ctrs),
        ContainerStatus: pendingUnary(ctx, s, 'ContainerStatus', ctrs, containerId),
        UpdateContainerResources: pendingUnary(ctx, s, 'UpdateContainerResources', ctrs, containerId),
        ReopenContainerLog: pendingUnary(ctx, s, 'ReopenContainerLog', ctrs, containerId),
        ExecSync: pendingUnary(ctx, s, 'ExecSync', ctrs, command),
        Exec: pendingUnary(ctx, s, 'Exec', stream, command),
        Attach: pendingUnary(ctx, s, 'Attach', stream, containerId),
        PortForward: pendingUnary(ctx, s, 'PortForward', stream, sandboxId),
        ContainerStats: pendingUnary(ctx, s, 'ContainerStats', stats, containerId),
        ListContainerStats: pendingUnary(ctx, s, 'ListContainerStats', stats),
        StreamContainerStats: pendingStream(ctx, s, 'StreamContainerStats', stats),
        PodSandboxStats: pendingUnary(ctx, s, 'PodSandboxStats', stats, sandboxId),
        ListPodSandboxStats: pendingUnary(ctx, s, 'ListPodSandboxStats', stats),
        StreamPodSandboxStats: pendingStream(ctx, s, 'StreamPodSandboxStats', stats),
        UpdateRuntimeConfig: pendingUnary(ctx, s, 'UpdateRuntimeConfig', 'pod networking'),
        CheckpointContainer: pendingUnary(ctx, s, 'CheckpointContainer', 'checkpointing', containerId),
        GetContainerEvents: pendingStream(ctx, s, 'GetContainerEvents', 'container events'),
        ListMetricDescriptors: pendingUnary(ctx, s, 'ListMetricDescriptors', stats),
        ListPodSandboxMetrics: pendingUnary(ctx, s, 'ListPodSandboxMetrics', stats),
        StreamPodSandboxMetrics: pendingStream(ctx, s, 'StreamPodSandboxMetrics', stats),
        UpdatePodSandboxResources: pendingUnary(ctx, s, 'UpdatePodSandboxResources', pods, sandboxId),
    };
}
export function pendingImageHandlers(ctx) {
    const s = 'ImageService';
    const images = 'image pulls and the image store';
    return {
        ListImages: pendingUnary(ctx, s, 'ListImages', images),
        StreamImages: pendingStream(ctx, s, 'StreamImages', images),
        ImageStatus: pendingUnary(ctx, s, 'ImageStatus', images, imageRef),
        PullImage: pendingUnary(ctx, s, 'PullImage', images, imageRef),
        RemoveImage: pendingUnary(ctx, s, 'RemoveImage', images, imageRef),
        ImageFsInfo: pendingUnary(ctx, s, 'ImageFsInfo', images),
    };
}
//# sourceMappingURL=pending.js.map