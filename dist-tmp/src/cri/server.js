/**
 * The CRI gRPC server: both services of runtime.v1 on a unix socket (mode 0660), every RPC
 * registered (the generated *ServiceHandlers types make a missing one a compile error).
 */
import { chmod } from 'node:fs/promises';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { UnavailableError } from '../errors.js';
import { unary } from './handler.js';
import { pendingImageHandlers, pendingRuntimeHandlers } from './pending.js';
import { loadCriProto } from './proto.js';
import { runtimeConfig } from './runtime/runtime-config.js';
import { status } from './runtime/status.js';
import { version } from './runtime/version.js';
import { prepareSocketPath, removeSocket } from './socket.js';
/** kubelet's own limit for CRI messages. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
export function runtimeHandlers(ctx) {
    return {
        Version: unary(ctx, 'Version', version(ctx.runtime)),
        Status: unary(ctx, 'Status', status(ctx.runtime)),
        RuntimeConfig: unary(ctx, 'RuntimeConfig', runtimeConfig(ctx.runtime)),
        ...pendingRuntimeHandlers(ctx),
    };
}
export async function startCriServer(ctx, socketPath) {
    const proto = await loadCriProto();
    const server = new Server({
        'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
        'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    });
    server.addService(proto.runtime.v1.RuntimeService.service, runtimeHandlers(ctx));
    server.addService(proto.runtime.v1.ImageService.service, pendingImageHandlers(ctx));
    await prepareSocketPath(socketPath);
    // The socket file is created with the process umask; make it 0660 from the first instant.
    const oldMask = process.umask(0o117);
    try {
        await new Promise((resolve, reject) => {
            server.bindAsync(`unix:${socketPath}`, ServerCredentials.createInsecure(), (err) => {
                if (err)
                    reject(new UnavailableError(`cannot listen on ${socketPath}: ${err.message}`, { cause: err }));
                else
                    resolve();
            });
        });
    }
    finally {
        process.umask(oldMask);
    }
    await chmod(socketPath, 0o660);
    return {
        shutdown: async (graceMs) => {
            const graceful = new Promise((resolve) => {
                server.tryShutdown(() => {
                    resolve(true);
                });
            });
            let timer;
            const timeout = new Promise((resolve) => {
                timer = setTimeout(() => {
                    resolve(false);
                }, graceMs);
            });
            const clean = await Promise.race([graceful, timeout]);
            clearTimeout(timer);
            if (!clean)
                server.forceShutdown();
            await removeSocket(socketPath);
            return { forced: !clean };
        },
    };
}
//# sourceMappingURL=server.js.map