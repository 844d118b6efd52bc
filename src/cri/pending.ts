/**
 * RPCs whose engines have not landed yet. Each still checks its request's required fields
 * (bad input gets INVALID_ARGUMENT naming the field, as it will once implemented) and then
 * answers UNIMPLEMENTED with a message saying what is missing. An RPC leaves this file when
 * its own file under runtime/ or image/ lands.
 */
import type { handleUnaryCall } from '@grpc/grpc-js';
import type { RuntimeServiceHandlers } from '../generated/runtime/v1/RuntimeService.js';
import { UnimplementedError } from '../errors.js';
import type { CriContext } from './context.js';
import { unary } from './handler.js';
import { requireId } from './limits.js';

type Check<Req> = (req: Req) => void;

function refusal(service: string, method: string, area: string, version: string): UnimplementedError {
  return new UnimplementedError(
    `${service}/${method} is not implemented by crisp ${version} yet (${area} have not landed); ` +
      'upgrade crisp or use a runtime that provides it',
  );
}

function pendingUnary<Req, Res>(
  ctx: CriContext,
  service: string,
  method: string,
  area: string,
  check?: Check<Req>,
): handleUnaryCall<Req, Res> {
  return unary<Req, Res>(ctx, method, (req) => {
    check?.(req);
    return Promise.reject(refusal(service, method, area, ctx.runtime.runtimeVersion));
  });
}

const containerId = (r: { container_id: string }): void => {
  requireId(r.container_id, 'container_id');
};

/** RuntimeService RPCs without an implementation yet; server.ts must provide every other one. */
export type PendingRuntimeMethod = 'CheckpointContainer';

export function pendingRuntimeHandlers(ctx: CriContext): {
  [M in PendingRuntimeMethod]: RuntimeServiceHandlers[M];
} {
  const s = 'RuntimeService';
  return {
    CheckpointContainer: pendingUnary(ctx, s, 'CheckpointContainer', 'checkpointing', containerId),
  };
}
