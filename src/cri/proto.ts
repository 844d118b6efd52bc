/**
 * Loads proto/runtime/v1/api.proto at run time with @grpc/proto-loader. The option set here
 * must match the one proto-loader-gen-types used (package.json "proto" script), so that the
 * generated types in src/generated describe exactly the objects handlers receive:
 * field names as in the proto, int64 as decimal strings, enums as their names, defaults set.
 */
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition } from '@grpc/grpc-js';
import { load, type Options, type PackageDefinition } from '@grpc/proto-loader';
import type { ProtoGrpcType } from '../generated/api.js';

export const protoLoaderOptions: Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** The compiled module lives in dist/src/cri/; the proto stays at the top of the checkout or install. */
export const criProtoPath = fileURLToPath(new URL('../../../proto/runtime/v1/api.proto', import.meta.url));

/** The proto's definition as proto-loader reads it (with each message's descriptor). */
export function loadCriDefinition(): Promise<PackageDefinition> {
  return load(criProtoPath, protoLoaderOptions);
}

export async function loadCriProto(definition?: PackageDefinition): Promise<ProtoGrpcType> {
  return loadPackageDefinition(definition ?? (await loadCriDefinition())) as unknown as ProtoGrpcType;
}
