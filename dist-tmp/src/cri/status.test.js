import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { AlreadyExistsError, CommandError, InternalError, InvalidArgumentError, NotFoundError, errorClasses, } from '../errors.js';
import { grpcCodeFor, toGrpcStatus } from './status.js';
/** One instance of every class, built with representative arguments. */
function sample(cls) {
    if (cls === NotFoundError || cls === AlreadyExistsError)
        return new cls('container', 'abc');
    if (cls === InvalidArgumentError)
        return new cls('config.metadata.name', 'required');
    if (cls === CommandError)
        return new cls('runc', 1, 'boom');
    return new cls('something happened');
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
        assert.equal(toGrpcStatus(new NotFoundError('container', 'abc')).status.details, 'container "abc" not found');
        assert.equal(toGrpcStatus(new CommandError('runc', 1, 'container not running')).status.details, 'runc exited with code 1: container not running');
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
    it('is documented: docs/errors.md lists every class and code', async () => {
        const doc = await readFile(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
        for (const cls of errorClasses) {
            const err = sample(cls);
            assert.ok(doc.includes(`\`${cls.name}\``), `docs/errors.md names ${cls.name}`);
            assert.ok(doc.includes(`\`${err.code}\``), `docs/errors.md names code ${err.code}`);
            assert.ok(doc.includes(GrpcCode[grpcCodeFor[err.code]]), `docs/errors.md names ${GrpcCode[grpcCodeFor[err.code]]}`);
        }
    });
});
//# sourceMappingURL=status.test.js.map