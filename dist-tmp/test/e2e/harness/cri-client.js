/**
 * A typed CRI client for the e2e tests, generated from proto/ exactly as kubelet's would be:
 * grpc-js over the daemon's unix socket, with promise wrappers for unary calls.
 */
import { credentials, Metadata } from '@grpc/grpc-js';
import { loadCriProto } from '../../../src/cri/proto.js';
export async function connectCri(socketPath) {
    const proto = await loadCriProto();
    const address = `unix:${socketPath}`;
    const runtime = new proto.runtime.v1.RuntimeService(address, credentials.createInsecure());
    const image = new proto.runtime.v1.ImageService(address, credentials.createInsecure());
    return {
        runtime,
        image,
        close: () => {
            runtime.close();
            image.close();
        },
    };
}
/** Calls a unary method with a deadline and resolves with its response or rejects with the ServiceError. */
export function call(client, method, req, timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
        method.call(client, req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
            if (err)
                reject(err);
            else if (res === undefined)
                reject(new Error('empty response'));
            else
                resolve(res);
        });
    });
}
/** Resolves with the ServiceError a call fails with, and fails the test if it succeeds. */
export async function callError(client, method, req) {
    try {
        await call(client, method, req);
    }
    catch (err) {
        return err;
    }
    throw new Error('expected the call to fail, but it succeeded');
}
//# sourceMappingURL=cri-client.js.map