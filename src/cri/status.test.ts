import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import {
  AlreadyExistsError,
  CanceledError,
  CommandError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  UnimplementedError,
  errorClasses,
  type CrispError,
} from '../errors.js';
import { MAX_DETAILS_CHARS, grpcCodeFor, toGrpcStatus } from './status.js';

/** One instance of every class, built with representative arguments. */
const samples: CrispError[] = [
  new NotFoundError('container', 'abc'),
  new AlreadyExistsError('pod sandbox', 'p'),
  new InvalidArgumentError('config.metadata.name', 'required'),
  new FailedPreconditionError('container "abc" is running'),
  new UnavailableError('runc is missing'),
  new DeadlineExceededError('runc state took too long'),
  new CanceledError('client went away'),
  new ResourceExhaustedError('disk full'),
  new UnauthenticatedError('registry said 401'),
  new PermissionDeniedError('registry said 403'),
  new UnimplementedError('not yet'),
  new CommandError('runc', 1, 'boom'),
  new InternalError('bug'),
];

function sample(cls: (typeof errorClasses)[number]): CrispError {
  for (const s of samples) if (s instanceof cls) return s;
  throw new Error(`no sample of ${cls.name}`);
}

describe('error to gRPC status mapping', () => {
  it('maps every error class to a distinct, non-OK code', () => {
    for (const cls of errorClasses) {
      const err = sample(cls);
      const { status } = toGrpcStatus(err);
      assert.notEqual(status.code, GrpcCode.OK, cls.name);
      assert.equal(status.code, grpcCodeFor[err.code], cls.name);
    }
    const codes = new Set(errorClasses.map((cls) => sample(cls).code));
    assert.equal(codes.size, errorClasses.length, 'every class has its own code');
  });

  it('maps the common classes to the codes kubelet expects', () => {
    assert.equal(toGrpcStatus(new NotFoundError('container', 'abc')).status.code, GrpcCode.NOT_FOUND);
    assert.equal(toGrpcStatus(new InvalidArgumentError('x', 'y')).status.code, GrpcCode.INVALID_ARGUMENT);
    assert.equal(toGrpcStatus(new AlreadyExistsError('pod', 'p')).status.code, GrpcCode.ALREADY_EXISTS);
    assert.equal(toGrpcStatus(new CommandError('runc', 1, '')).status.code, GrpcCode.UNKNOWN);
  });

  it('names the object in the message', () => {
    assert.equal(
      toGrpcStatus(new NotFoundError('container', 'abc')).status.details,
      'container "abc" not found',
    );
    assert.equal(
      toGrpcStatus(new CommandError('runc', 1, 'container not running')).status.details,
      'runc exited with code 1: container not running',
    );
  });

  it('turns anything else into INTERNAL without leaking its message or stack', () => {
    const secret = new Error('password=hunter2 at /some/file.ts:10');
    const mapped = toGrpcStatus(secret);
    assert.equal(mapped.status.code, GrpcCode.INTERNAL);
    assert.ok(!mapped.status.details.includes('hunter2'));
    assert.ok(!mapped.status.details.includes('.ts:'));
    assert.equal(mapped.error.cause, secret, 'the original is kept for the log');
    assert.ok(mapped.error instanceof InternalError);
    assert.equal(toGrpcStatus('a string').status.code, GrpcCode.INTERNAL);
    assert.equal(toGrpcStatus(undefined).status.code, GrpcCode.INTERNAL);
  });

  it('cuts a message quoting a huge request to a size every client takes', () => {
    const huge = new FailedPreconditionError(`container "${'x'.repeat(1 << 20)}" is exited`);
    const details = toGrpcStatus(huge).status.details;
    assert.ok(details.length < MAX_DETAILS_CHARS + 100, `${details.length} characters`);
    assert.match(details, /^container "xxx/);
    assert.match(details, /more characters cut\)$/);
    assert.equal(
      toGrpcStatus(new NotFoundError('container', 'abc')).status.details,
      'container "abc" not found',
    );
    // Any string may come as an id: NOT_FOUND shows a long one shortened, and still says why.
    assert.equal(
      toGrpcStatus(new NotFoundError('container', 'x'.repeat(1 << 20))).status.details,
      `container "${'x'.repeat(64)}"… (1048576 characters) not found`,
    );
  });

  it('is documented: docs/errors.md lists every class and code', async () => {
    const doc = await readFile(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
    for (const cls of errorClasses) {
      const err = sample(cls);
      assert.ok(doc.includes(`\`${cls.name}\``), `docs/errors.md names ${cls.name}`);
      assert.ok(doc.includes(`\`${err.code}\``), `docs/errors.md names code ${err.code}`);
      assert.ok(
        doc.includes(GrpcCode[grpcCodeFor[err.code]]),
        `docs/errors.md names ${GrpcCode[grpcCodeFor[err.code]]}`,
      );
    }
  });
});
