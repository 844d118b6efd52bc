/**
 * The one wrapper every RPC goes through: it logs the call (debug on success, warn or error
 * with the gRPC code on failure), records metrics and the in-flight table, turns thrown errors
 * into gRPC statuses via status.ts, and makes sure no rejection or stack trace escapes.
 */
import {
  status as GrpcCode,
  type handleServerStreamingCall,
  type handleUnaryCall,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import type { CriContext } from './context.js';
import { codeName, isServerFault, toGrpcStatus } from './status.js';

/** Per-call facts an RPC implementation may use. */
export interface CallScope {
  /** Aborted when the client cancels or disconnects. */
  signal: AbortSignal;
}

/** What a server-streaming RPC gets besides CallScope: a way to wait out a full send buffer. */
export interface StreamScope extends CallScope {
  /**
   * Resolves once the stream takes messages again after `send` returned false (the client is
   * not reading fast enough), or at once if it already does or the call has ended; also when
   * `until` aborts, so a producer can stop waiting for its own reasons.
   */
  drained(until?: AbortSignal): Promise<void>;
}

export type UnaryImpl<Req, Res> = (req: Req, scope: CallScope) => Promise<Res>;
/**
 * `send` queues a message and returns false when the stream's buffer is full: an
 * implementation that produces without bound (GetContainerEvents) then awaits `scope.drained()`
 * before sending more. Finite replies (lists) may ignore the result.
 */
export type StreamImpl<Req, Res> = (
  req: Req,
  send: (msg: Res) => boolean,
  scope: StreamScope,
) => Promise<void>;

/** Request fields that identify objects, and the log key each one gets. */
const idFields: Readonly<Record<string, string>> = {
  pod_sandbox_id: 'sandboxId',
  container_id: 'containerId',
};

/** Longest id or image logged and shown in the in-flight table (a hostile one may be megabytes). */
const MAX_LOGGED_CHARS = 256;

const logged = (s: string): string => (s.length <= MAX_LOGGED_CHARS ? s : `${s.slice(0, MAX_LOGGED_CHARS)}…`);

function objectsOf(req: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof req !== 'object' || req === null) return out;
  const fields = req as Record<string, unknown>;
  for (const [field, key] of Object.entries(idFields)) {
    const v = fields[field];
    if (typeof v === 'string' && v !== '') out[key] = logged(v);
  }
  const image = fields.image;
  if (typeof image === 'object' && image !== null) {
    const ref = (image as Record<string, unknown>).image;
    if (typeof ref === 'string' && ref !== '') out.image = logged(ref);
  }
  return out;
}

function scopeFor(call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>): {
  scope: CallScope;
  dispose: () => void;
} {
  const controller = new AbortController();
  const onCancel = (): void => {
    controller.abort(new Error('the client cancelled the call'));
  };
  call.once('cancelled', onCancel);
  return { scope: { signal: controller.signal }, dispose: () => call.off('cancelled', onCancel) };
}

interface Finished {
  method: string;
  objects: Record<string, string>;
  started: number;
  inflightId: number;
  thrown?: { value: unknown };
  cancelled: boolean;
}

/** Logs and counts a finished call; returns the status to send when it failed. */
function finish(ctx: CriContext, f: Finished): ReturnType<typeof toGrpcStatus>['status'] | undefined {
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
  if (isServerFault(code)) {
    ctx.log.error({ ...fields, code: codeName(code), err: error, ...error.details }, 'rpc failed');
  } else {
    // A client error: the message says it all; a stack trace would only be noise.
    ctx.log.warn({ ...fields, code: codeName(code), error: status.details, ...error.details }, 'rpc failed');
  }
  return status;
}

export function unary<Req, Res>(
  ctx: CriContext,
  method: string,
  impl: UnaryImpl<Req, Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const objects = objectsOf(call.request);
    const started = performance.now();
    const inflightId = ctx.inflight.begin(method, objects);
    const { scope, dispose } = scopeFor(call);
    const run = async (): Promise<Res> => {
      ctx.checkRequest?.(method, call.request);
      return impl(call.request, scope);
    };
    run().then(
      (res) => {
        dispose();
        finish(ctx, { method, objects, started, inflightId, cancelled: false });
        callback(null, res);
      },
      (thrown: unknown) => {
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
      },
    );
  };
}

export function serverStream<Req, Res>(
  ctx: CriContext,
  method: string,
  impl: StreamImpl<Req, Res>,
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    const objects = objectsOf(call.request);
    const started = performance.now();
    const inflightId = ctx.inflight.begin(method, objects);
    const { scope, dispose } = scopeFor(call);
    const send = (msg: Res): boolean => !scope.signal.aborted && call.write(msg);
    const drained = (until?: AbortSignal): Promise<void> =>
      new Promise((resolve) => {
        if (scope.signal.aborted || until?.aborted === true || !call.writableNeedDrain) {
          resolve();
          return;
        }
        // A cancelled call never drains (grpc-js drops its writes), hence the abort too.
        const done = (): void => {
          call.off('drain', done);
          scope.signal.removeEventListener('abort', done);
          until?.removeEventListener('abort', done);
          resolve();
        };
        call.on('drain', done);
        scope.signal.addEventListener('abort', done);
        until?.addEventListener('abort', done);
      });
    const run = async (): Promise<void> => {
      ctx.checkRequest?.(method, call.request);
      return impl(call.request, send, { ...scope, drained });
    };
    run().then(
      () => {
        dispose();
        finish(ctx, { method, objects, started, inflightId, cancelled: false });
        if (!scope.signal.aborted) call.end();
      },
      (thrown: unknown) => {
        dispose();
        const status = finish(ctx, {
          method,
          objects,
          started,
          inflightId,
          thrown: { value: thrown },
          cancelled: scope.signal.aborted,
        });
        if (status && !scope.signal.aborted) call.emit('error', status);
      },
    );
  };
}
