/**
 * The error classes every layer of crisp throws. Each class has a stable string `code` that
 * never changes once released; src/cri/status.ts is the only place that turns a class into a
 * gRPC status code, and docs/errors.md lists every code (a unit test keeps the two in step).
 *
 * Messages name the object and, where possible, say what to do:
 *   new NotFoundError('container', 'abc')  →  container "abc" not found
 */

export type ErrorCode =
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'INVALID_ARGUMENT'
  | 'FAILED_PRECONDITION'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  | 'CANCELED'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'UNIMPLEMENTED'
  | 'COMMAND_FAILED'
  | 'INTERNAL';

export interface CrispErrorOptions {
  cause?: unknown;
  /** Extra structured fields for the logs; never sent to the client. */
  details?: Record<string, unknown>;
}

export abstract class CrispError extends Error {
  abstract readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(message: string, options: CrispErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.details = options.details ?? {};
  }
}

/**
 * An id or name as a message shows it: whole up to 1024 characters (every real id, image
 * reference with its digest, or name), else its start and its length.
 */
function shownId(id: string): string {
  return id.length <= 1024
    ? JSON.stringify(id)
    : `${JSON.stringify(id.slice(0, 64))}… (${id.length} characters)`;
}

/**
 * `kind "id" not found`, e.g. `container "abc" not found`. Any string may arrive as an id (one
 * that is no id simply finds nothing), so a huge one is shortened in the message.
 */
export class NotFoundError extends CrispError {
  readonly code = 'NOT_FOUND';
  constructor(
    readonly kind: string,
    readonly id: string,
    options: CrispErrorOptions & { hint?: string } = {},
  ) {
    super(`${kind} ${shownId(id)} not found${options.hint ? `: ${options.hint}` : ''}`, options);
  }
}

/** `kind "id" already exists`, with an optional hint such as the id of the holder. */
export class AlreadyExistsError extends CrispError {
  readonly code = 'ALREADY_EXISTS';
  constructor(
    readonly kind: string,
    readonly id: string,
    options: CrispErrorOptions & { hint?: string } = {},
  ) {
    super(`${kind} ${JSON.stringify(id)} already exists${options.hint ? `: ${options.hint}` : ''}`, options);
  }
}

/** A request field is missing or malformed; `field` is the proto path, e.g. `config.metadata.name`. */
export class InvalidArgumentError extends CrispError {
  readonly code = 'INVALID_ARGUMENT';
  constructor(
    readonly field: string,
    readonly reason: string,
    options: CrispErrorOptions = {},
  ) {
    super(`invalid ${field}: ${reason}`, options);
  }
}

/** The object exists but is in a state that does not allow the operation. */
export class FailedPreconditionError extends CrispError {
  readonly code = 'FAILED_PRECONDITION';
}

/** A dependency (runtime binary, network plugin, registry) cannot be reached right now; retrying may help. */
export class UnavailableError extends CrispError {
  readonly code = 'UNAVAILABLE';
}

/** A bounded wait ran out. */
export class DeadlineExceededError extends CrispError {
  readonly code = 'DEADLINE_EXCEEDED';
}

/** The caller went away or the daemon is shutting down. */
export class CanceledError extends CrispError {
  readonly code = 'CANCELED';
}

/** A limit was hit (disk, concurrent pulls, ...). */
export class ResourceExhaustedError extends CrispError {
  readonly code = 'RESOURCE_EXHAUSTED';
}

/** Credentials were missing or refused (e.g. a registry answered 401). */
export class UnauthenticatedError extends CrispError {
  readonly code = 'UNAUTHENTICATED';
}

/** The caller is known but not allowed (e.g. a registry answered 403). */
export class PermissionDeniedError extends CrispError {
  readonly code = 'PERMISSION_DENIED';
}

/** The RPC or option exists in the CRI but crisp does not provide it (yet). */
export class UnimplementedError extends CrispError {
  readonly code = 'UNIMPLEMENTED';
}

/** A child process (runc, conmon, a CNI plugin, ...) failed. */
export class CommandError extends CrispError {
  readonly code = 'COMMAND_FAILED';
  constructor(
    readonly command: string,
    readonly exitCode: number | undefined,
    readonly stderrTail: string,
    options: CrispErrorOptions = {},
  ) {
    const status = exitCode === undefined ? 'did not finish' : `exited with code ${exitCode}`;
    super(`${command} ${status}${stderrTail ? `: ${stderrTail}` : ''}`, options);
  }
}

/** A bug or an unexpected condition; the message sent to clients is generic, the cause is logged. */
export class InternalError extends CrispError {
  readonly code = 'INTERNAL';
}

/** Every concrete class, for the tests that check the mapping and the docs stay complete. */
export const errorClasses = [
  NotFoundError,
  AlreadyExistsError,
  InvalidArgumentError,
  FailedPreconditionError,
  UnavailableError,
  DeadlineExceededError,
  CanceledError,
  ResourceExhaustedError,
  UnauthenticatedError,
  PermissionDeniedError,
  UnimplementedError,
  CommandError,
  InternalError,
] as const;

/** Wraps anything thrown into a CrispError, keeping CrispErrors as they are. */
export function toCrispError(err: unknown, context = 'unexpected error'): CrispError {
  if (err instanceof CrispError) return err;
  return new InternalError(context, { cause: err });
}
