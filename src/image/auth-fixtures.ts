/** Test helpers for credentials: an AuthConfig with every field empty but the ones given. */
import type { AuthConfigInput } from './types.js';

export function authConfig(fields: Partial<AuthConfigInput>): AuthConfigInput {
  return {
    username: '',
    password: '',
    auth: '',
    serverAddress: '',
    identityToken: '',
    registryToken: '',
    ...fields,
  };
}
