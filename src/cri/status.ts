/**
 * The one place that knows gRPC status codes: every CrispError class maps to exactly one code
 * here, and anything that is not a CrispError becomes INTERNAL (its detail goes to the log,
 * never to the client).
 */
import { status as GrpcCode, type StatusObject, Metadata } from '@grpc/grpc-js';
import { type CrispError, type ErrorCode, toCrispError } from '../errors.js';

export const grpcCodeFor: Readonly<Record<ErrorCode, GrpcCode>> = {
  NOT_FOUND: GrpcCode.NOT_FOUND,
  ALREADY_EXISTS: GrpcCode.ALREADY_EXISTS,
  INVALID_ARGUMENT: GrpcCode.INVALID_ARGUMENT,
  FAILED_PRECONDITION: GrpcCode.FAILED_PRECONDITION,
  UNAVAILABLE: GrpcCode.UNAVAILABLE,
  DEADLINE_EXCEEDED: GrpcCode.DEADLINE_EXCEEDED,
  CANCELED: GrpcCode.CANCELLED,
  RESOURCE_EXHAUSTED: GrpcCode.RESOURCE_EXHAUSTED,
  UNAUTHENTICATED: GrpcCode.UNAUTHENTICATED,
  PERMISSION_DENIED: GrpcCode.PERMISSION_DENIED,
  UNIMPLEMENTED: GrpcCode.UNIMPLEMENTED,
  // A runtime, monitor or plugin process failed: the same code CRI-O and containerd use.
  COMMAND_FAILED: GrpcCode.UNKNOWN,
  INTERNAL: GrpcCode.INTERNAL,
};

/** Codes that mean "the daemon has a problem" rather than "the request was wrong". */
export function isServerFault(code: GrpcCode): boolean {
  return code === GrpcCode.INTERNAL || code === GrpcCode.UNKNOWN || code === GrpcCode.DATA_LOSS;
}

export function codeName(code: GrpcCode): string {
  return GrpcCode[code];
}

export interface MappedError {
  error: CrispError;
  status: Pick<StatusObject, 'code' | 'details' | 'metadata'>;
}

/**
 * The longest status message sent. The message travels in an HTTP/2 header (grpc-message), and
 * clients refuse header blocks past 16..64 KiB; a message quoting a hostile request must not
 * make the client drop the answer.
 */
export const MAX_DETAILS_CHARS = 4096;

function bounded(details: string): string {
  if (details.length <= MAX_DETAILS_CHARS) return details;
  return `${details.slice(0, MAX_DETAILS_CHARS)}… (${details.length - MAX_DETAILS_CHARS} more characters cut)`;
}

/** Turns anything thrown by a handler into the status sent to the client. */
export function toGrpcStatus(thrown: unknown): MappedError {
  const error = toCrispError(thrown);
  const code = grpcCodeFor[error.code];
  const details =
    error.code === 'INTERNAL'
      ? `internal error in crisp: ${error.message}; the daemon log has the details`
      : error.message;
  return { error, status: { code, details: bounded(details), metadata: new Metadata() } };
}
