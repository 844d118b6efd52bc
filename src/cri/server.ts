/**
 * The CRI gRPC server: both services of runtime.v1 on a unix socket (mode 0660, owner root, group
 * crisp.toml's socket_group when set), every RPC registered (the generated *ServiceHandlers types make a missing one a compile error).
 */
import { chmod, chown } from 'node:fs/promises';
import { createServer, type Server as NetServer } from 'node:net';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { RuntimeServiceHandlers } from '../generated/runtime/v1/RuntimeService.js';
import type { ImageServiceHandlers } from '../generated/runtime/v1/ImageService.js';
import { UnavailableError } from '../errors.js';
import { AuthorityRepairStream } from './authority-repair.js';
import type { CriContext } from './context.js';
import { serverStream, unary } from './handler.js';
import { imageFsInfo } from './image/image-fs-info.js';
import { imageStatus } from './image/image-status.js';
import { listImages, streamImages } from './image/list-images.js';
import { pullImage } from './image/pull-image.js';
import { removeImage } from './image/remove-image.js';
import { pendingRuntimeHandlers } from './pending.js';
import { exec } from './runtime/exec.js';
import { attach } from './runtime/attach.js';
import { portForward } from './runtime/port-forward.js';
import { loadCriDefinition, loadCriProto } from './proto.js';
import { unknownEnumCheck } from './unknown-enums.js';
import { LIMITS } from './limits.js';
import { runtimeConfig } from './runtime/runtime-config.js';
import { status } from './runtime/status.js';
import { version } from './runtime/version.js';
import { updateContainerResources } from './runtime/update-container-resources.js';
import { updatePodSandboxResources } from './runtime/update-pod-sandbox-resources.js';
import { updateRuntimeConfig } from './runtime/update-runtime-config.js';
import { getContainerEvents } from './runtime/get-container-events.js';
import { StatsReader } from '../container/stats.js';
import { containerStats, listContainerStats, streamContainerStats } from './runtime/container-stats.js';
import {
  listMetricDescriptors,
  listPodSandboxMetrics,
  streamPodSandboxMetrics,
} from './runtime/pod-sandbox-metrics.js';
import { listPodSandboxStats, podSandboxStats, streamPodSandboxStats } from './runtime/pod-sandbox-stats.js';
import { containerStatus } from './runtime/container-status.js';
import { createContainer } from './runtime/create-container.js';
import { execSync } from './runtime/exec-sync.js';
import { listContainers, streamContainers } from './runtime/list-containers.js';
import { listPodSandbox, streamPodSandboxes } from './runtime/list-pod-sandbox.js';
import { podSandboxStatus } from './runtime/pod-sandbox-status.js';
import { removeContainer } from './runtime/remove-container.js';
import { removePodSandbox } from './runtime/remove-pod-sandbox.js';
import { reopenContainerLog } from './runtime/reopen-container-log.js';
import { runPodSandbox } from './runtime/run-pod-sandbox.js';
import { startContainer } from './runtime/start-container.js';
import { stopContainer } from './runtime/stop-container.js';
import { stopPodSandbox } from './runtime/stop-pod-sandbox.js';
import { prepareSocketPath, removeSocket } from './socket.js';

/** kubelet's own limit for CRI messages (docs/limits.md). */
const MAX_MESSAGE_BYTES = LIMITS.messageBytes;

export interface CriServer {
  /** Stops accepting calls, waits up to `graceMs` for in-flight ones, then cancels the rest. */
  shutdown(graceMs: number): Promise<{ forced: boolean }>;
}

export function runtimeHandlers(ctx: CriContext): RuntimeServiceHandlers {
  const { containers, sandboxes } = ctx;
  const stats = new StatsReader({ upperDir: (id) => containers.upperDir(id), log: ctx.log });
  return {
    Version: unary(ctx, 'Version', version(ctx.runtime)),
    Status: unary(ctx, 'Status', status(ctx.runtime)),
    RuntimeConfig: unary(ctx, 'RuntimeConfig', runtimeConfig(ctx.runtime)),
    RunPodSandbox: unary(ctx, 'RunPodSandbox', runPodSandbox(ctx.sandboxes)),
    StopPodSandbox: unary(ctx, 'StopPodSandbox', stopPodSandbox(ctx.sandboxes)),
    RemovePodSandbox: unary(ctx, 'RemovePodSandbox', removePodSandbox(ctx.sandboxes)),
    PodSandboxStatus: unary(ctx, 'PodSandboxStatus', podSandboxStatus(ctx.sandboxes, ctx.containers)),
    ListPodSandbox: unary(ctx, 'ListPodSandbox', listPodSandbox(ctx.sandboxes)),
    StreamPodSandboxes: serverStream(ctx, 'StreamPodSandboxes', streamPodSandboxes(ctx.sandboxes)),
    CreateContainer: unary(ctx, 'CreateContainer', createContainer(ctx.sandboxes)),
    StartContainer: unary(ctx, 'StartContainer', startContainer(ctx.containers)),
    StopContainer: unary(ctx, 'StopContainer', stopContainer(ctx.containers)),
    RemoveContainer: unary(ctx, 'RemoveContainer', removeContainer(ctx.containers)),
    ListContainers: unary(ctx, 'ListContainers', listContainers(ctx.containers)),
    StreamContainers: serverStream(ctx, 'StreamContainers', streamContainers(ctx.containers)),
    ContainerStatus: unary(ctx, 'ContainerStatus', containerStatus(ctx.containers)),
    ExecSync: unary(ctx, 'ExecSync', execSync(ctx.containers)),
    Exec: unary(ctx, 'Exec', exec(ctx.streaming)),
    Attach: unary(ctx, 'Attach', attach(ctx.streaming)),
    PortForward: unary(ctx, 'PortForward', portForward(ctx.streaming)),
    ReopenContainerLog: unary(ctx, 'ReopenContainerLog', reopenContainerLog(ctx.containers)),
    UpdateContainerResources: unary(ctx, 'UpdateContainerResources', updateContainerResources(containers)),
    ContainerStats: unary(ctx, 'ContainerStats', containerStats(containers, stats)),
    ListContainerStats: unary(ctx, 'ListContainerStats', listContainerStats(containers, stats)),
    StreamContainerStats: serverStream(ctx, 'StreamContainerStats', streamContainerStats(containers, stats)),
    PodSandboxStats: unary(ctx, 'PodSandboxStats', podSandboxStats(sandboxes, containers, stats)),
    ListPodSandboxStats: unary(ctx, 'ListPodSandboxStats', listPodSandboxStats(sandboxes, containers, stats)),
    StreamPodSandboxStats: serverStream(
      ctx,
      'StreamPodSandboxStats',
      streamPodSandboxStats(sandboxes, containers, stats),
    ),
    ListMetricDescriptors: unary(ctx, 'ListMetricDescriptors', listMetricDescriptors()),
    ListPodSandboxMetrics: unary(
      ctx,
      'ListPodSandboxMetrics',
      listPodSandboxMetrics(sandboxes, containers, stats),
    ),
    StreamPodSandboxMetrics: serverStream(
      ctx,
      'StreamPodSandboxMetrics',
      streamPodSandboxMetrics(sandboxes, containers, stats),
    ),
    GetContainerEvents: serverStream(ctx, 'GetContainerEvents', getContainerEvents(ctx.containers.events)),
    UpdatePodSandboxResources: unary(ctx, 'UpdatePodSandboxResources', updatePodSandboxResources(sandboxes)),
    UpdateRuntimeConfig: unary(ctx, 'UpdateRuntimeConfig', updateRuntimeConfig(sandboxes)),
    ...pendingRuntimeHandlers(ctx),
  };
}

export function imageHandlers(ctx: CriContext): ImageServiceHandlers {
  const { images } = ctx;
  return {
    ListImages: unary(ctx, 'ListImages', listImages(images)),
    StreamImages: serverStream(ctx, 'StreamImages', streamImages(images)),
    ImageStatus: unary(ctx, 'ImageStatus', imageStatus(images)),
    PullImage: unary(ctx, 'PullImage', pullImage(images)),
    RemoveImage: unary(ctx, 'RemoveImage', removeImage(images)),
    ImageFsInfo: unary(ctx, 'ImageFsInfo', imageFsInfo(images)),
  };
}

export interface CriSocketOptions {
  /** The socket's group (a resolved gid); undefined keeps the daemon's own group. */
  gid?: number;
}

export async function startCriServer(
  criContext: CriContext,
  socketPath: string,
  opts: CriSocketOptions = {},
): Promise<CriServer> {
  const definition = await loadCriDefinition();
  const proto = await loadCriProto(definition);
  const ctx: CriContext = { ...criContext, checkRequest: unknownEnumCheck(definition) };
  const server = new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  server.addService(proto.runtime.v1.RuntimeService.service, runtimeHandlers(ctx));
  server.addService(proto.runtime.v1.ImageService.service, imageHandlers(ctx));

  // crisp accepts connections itself and hands each to grpc-js through an authority-repairing
  // stream, so that older Go clients work too (see authority-repair.ts).
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  const listener: NetServer = createServer((socket) => {
    injector.injectConnection(
      new AuthorityRepairStream(socket, () => {
        ctx.metrics.authorityRepairs.inc();
      }),
    );
  });

  await prepareSocketPath(socketPath);
  // The socket file is created with the process umask; make it 0660 from the first instant.
  const oldMask = process.umask(0o117);
  try {
    await new Promise<void>((resolve, reject) => {
      listener.once('error', (err) => {
        reject(new UnavailableError(`cannot listen on ${socketPath}: ${err.message}`, { cause: err }));
      });
      listener.listen(socketPath, () => {
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  listener.on('error', (err) => {
    ctx.log.error({ err }, 'CRI socket error');
  });
  // -1 keeps the owner (root); only the group changes. Mode and group are set before any client
  // could have been told the socket is ready.
  if (opts.gid !== undefined) await chown(socketPath, -1, opts.gid);
  await chmod(socketPath, 0o660);

  return {
    shutdown: async (graceMs) => {
      listener.close();
      const graceful = new Promise<boolean>((resolve) => {
        server.tryShutdown(() => {
          resolve(true);
        });
      });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => {
          resolve(false);
        }, graceMs);
      });
      const clean = await Promise.race([graceful, timeout]);
      clearTimeout(timer);
      if (!clean) server.forceShutdown();
      await removeSocket(socketPath);
      return { forced: !clean };
    },
  };
}
