/**
 * Loads proto/runtime/v1/api.proto at run time with @grpc/proto-loader. The option set here
 * must match the one proto-loader-gen-types used (package.json "proto" script), so that the
 * generated types in src/generated describe exactly the objects handlers receive:
 * field names as in the proto, int64 as decimal strings, enums as their names, defaults set.
 */
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition } from '@grpc/grpc-js';
import { load } from '@grpc/proto-loader';
export const protoLoaderOptions = {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
};
/** The compiled module lives in dist/src/cri/; the proto stays at the top of the checkout or install. */
export const criProtoPath = fileURLToPath(new URL('../../../proto/runtime/v1/api.proto', import.meta.url));
export async function loadCriProto() {
    const definition = await load(criProtoPath, protoLoaderOptions);
    return loadPackageDefinition(definition);
}
//# sourceMappingURL=proto.js.map