/**
 * The one wrapper every RPC goes through: it logs the call (debug on success, warn or error
 * with the gRPC code on failure), records metrics and the in-flight table, turns thrown errors
 * into gRPC statuses via status.ts, and makes sure no rejection or stack trace escapes.
 */
import { status as GrpcCode, } from '@grpc/grpc-js';
import { codeName, isServerFault, toGrpcStatus } from './status.js';
/** Request fields that identify objects, and the log key each one gets. */
const idFields = {
    pod_sandbox_id: 'sandboxId',
    container_id: 'containerId',
};
function objectsOf(req) {
    const out = {};
    if (typeof req !== 'object' || req === null)
        return out;
    const fields = req;
    for (const [field, key] of Object.entries(idFields)) {
        const v = fields[field];
        if (typeof v === 'string' && v !== '')
            out[key] = v;
    }
    const image = fields.image;
    if (typeof image === 'object' && image !== null) {
        const ref = image.image;
        if (typeof ref === 'string' && ref !== '')
            out.image = ref;
    }
    return out;
}
function scopeFor(call) {
    const controller = new AbortController();
    const onCancel = () => {
        controller.abort(new Error('the client cancelled the call'));
    };
    call.once('cancelled', onCancel);
    return { scope: { signal: controller.signal }, dispose: () => call.off('cancelled', onCancel) };
}
/** Logs and counts a finished call; returns the status to send when it failed. */
function finish(ctx, f) {
    ctx.inflight.end(f.inflightId);
    const durationMs = performance.now() - f.started;
    ctx.metrics.grpcDuration.observe({ method: f.method }, durationMs / 1000);
    const fields = { rpc: f.method, ...f.objects, durationMs: Math.round(durationMs * 1000) / 1000 };
    if (!f.thrown) {
        ctx.metrics.grpcRequests.inc({ method: f.method, code: codeName(GrpcCode.OK) });
        ctx.log.debug(fields, 'rpc ok');
        return undefined;
    }
    const { error, status } = toGrpcStatus(f.thrown.value);
    const code = f.cancelled ? GrpcCode.CANCELLED : status.code;
    ctx.metrics.grpcRequests.inc({ method: f.method, code: codeName(code) });
    const logFields = { ...fields, code: codeName(code), err: error, ...error.details };
    if (isServerFault(code))
        ctx.log.error(logFields, 'rpc failed');
    else
        ctx.log.warn(logFields, 'rpc failed');
    return status;
}
export function unary(ctx, method, impl) {
    return (call, callback) => {
        const objects = objectsOf(call.request);
        const started = performance.now();
        const inflightId = ctx.inflight.begin(method, objects);
        const { scope, dispose } = scopeFor(call);
        const run = async () => impl(call.request, scope);
        run().then((res) => {
            dispose();
            finish(ctx, { method, objects, started, inflightId, cancelled: false });
            callback(null, res);
        }, (thrown) => {
            dispose();
            const status = finish(ctx, {
                method,
                objects,
                started,
                inflightId,
                thrown: { value: thrown },
                cancelled: scope.signal.aborted,
            });
            callback(status ?? null);
        });
    };
}
export function serverStream(ctx, method, impl) {
    return (call) => {
        const objects = objectsOf(call.request);
        const started = performance.now();
        const inflightId = ctx.inflight.begin(method, objects);
        const { scope, dispose } = scopeFor(call);
        const send = (msg) => {
            if (!scope.signal.aborted)
                call.write(msg);
        };
        const run = async () => impl(call.request, send, scope);
        run().then(() => {
            dispose();
            finish(ctx, { method, objects, started, inflightId, cancelled: false });
            if (!scope.signal.aborted)
                call.end();
        }, (thrown) => {
            dispose();
            const status = finish(ctx, {
                method,
                objects,
                started,
                inflightId,
                thrown: { value: thrown },
                cancelled: scope.signal.aborted,
            });
            if (status && !scope.signal.aborted)
                call.emit('error', status);
        });
    };
}
//# sourceMappingURL=handler.js.map