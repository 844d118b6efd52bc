/**
 * A typed CRI client for the e2e tests, generated from proto/ exactly as kubelet's would be:
 * grpc-js over the daemon's unix socket, with promise wrappers for unary calls.
 */
import { credentials, Metadata, type ServiceError, type CallOptions, type Client } from '@grpc/grpc-js';
import { loadCriProto } from '../../../src/cri/proto.js';
import type { RuntimeServiceClient } from '../../../src/generated/runtime/v1/RuntimeService.js';
import type { ImageServiceClient } from '../../../src/generated/runtime/v1/ImageService.js';

export interface CriClients {
  runtime: RuntimeServiceClient;
  image: ImageServiceClient;
  close(): void;
}

export async function connectCri(socketPath: string): Promise<CriClients> {
  const proto = await loadCriProto();
  const address = `unix:${socketPath}`;
  const runtime = new proto.runtime.v1.RuntimeService(address, credentials.createInsecure());
  const image = new proto.runtime.v1.ImageService(address, credentials.createInsecure());
  return {
    runtime,
    image,
    close: () => {
      runtime.close();
      image.close();
    },
  };
}

type UnaryMethod<Req, Res> = (
  req: Req,
  metadata: Metadata,
  options: CallOptions,
  cb: (err: ServiceError | null, res?: Res) => void,
) => unknown;

/** Calls a unary method with a deadline and resolves with its response or rejects with the ServiceError. */
export function call<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  req: Req,
  timeoutMs = 10_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
      if (err) reject(err);
      else if (res === undefined) reject(new Error('empty response'));
      else resolve(res);
    });
  });
}

/** Resolves with the ServiceError a call fails with, and fails the test if it succeeds. */
export async function callError<Req, Res>(
  client: Client,
  method: UnaryMethod<Req, Res>,
  req: Req,
): Promise<ServiceError> {
  try {
    await call(client, method, req);
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('expected the call to fail, but it succeeded');
}
