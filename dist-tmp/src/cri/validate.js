/**
 * Request checks shared by the RPC files. Each failure names the proto field, so the caller
 * sees e.g. `invalid pod_sandbox_id: required, got an empty string`.
 */
import { InvalidArgumentError } from '../errors.js';
export function requireString(value, field) {
    if (value === undefined || value === null || value === '') {
        throw new InvalidArgumentError(field, 'required, got an empty string');
    }
    return value;
}
export function requireMessage(value, field) {
    if (value === undefined || value === null) {
        throw new InvalidArgumentError(field, 'required, but the message is not set');
    }
    return value;
}
//# sourceMappingURL=validate.js.map