/**
 * A typed CRI client for the e2e tests, generated from proto/ exactly as kubelet's would be:
 * grpc-js over the daemon's unix socket. `runtime` and `image` wrap every unary RPC as a
 * promise (typed from the generated service definitions); `raw` keeps the grpc-js clients for
 * streaming calls and low-level tricks.
 */
import {
  credentials,
  Metadata,
  type Client,
  type ClientReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/proto-loader';
import { loadCriProto } from '../../../src/cri/proto.js';
import type { ContainerConfig } from '../../../src/generated/runtime/v1/ContainerConfig.js';
import type { PodSandboxConfig } from '../../../src/generated/runtime/v1/PodSandboxConfig.js';
import type {
  RuntimeServiceClient,
  RuntimeServiceDefinition,
} from '../../../src/generated/runtime/v1/RuntimeService.js';
import type {
  ImageServiceClient,
  ImageServiceDefinition,
} from '../../../src/generated/runtime/v1/ImageService.js';

export type PromiseClient<D> = {
  [K in keyof D]: D[K] extends MethodDefinition<infer Req, infer _Res, infer _ReqOut, infer ResOut>
    ? (req: Req, timeoutMs?: number) => Promise<ResOut>
    : never;
};

export interface CriClients {
  runtime: PromiseClient<RuntimeServiceDefinition>;
  image: PromiseClient<ImageServiceDefinition>;
  raw: { runtime: RuntimeServiceClient; image: ImageServiceClient };
  close(): void;
}

type Callback = (err: ServiceError | null, res?: unknown) => void;
type RawUnary = (req: unknown, md: Metadata, opts: { deadline: number }, cb: Callback) => unknown;

function promisify<D extends object>(client: Client, definition: D): PromiseClient<D> {
  const out: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(definition) as [string, MethodDefinition<object, object>][]) {
    if (def.requestStream || def.responseStream) {
      out[name] = () => Promise.reject(new Error(`${name} is a streaming RPC: use cri.raw`));
      continue;
    }
    const method = (client as unknown as Record<string, RawUnary>)[name];
    if (!method) throw new Error(`client has no method ${name}`);
    out[name] = (req: unknown, timeoutMs = 10_000) =>
      new Promise((resolve, reject) => {
        method.call(client, req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
          if (err) reject(err);
          else resolve(res);
        });
      });
  }
  return out as PromiseClient<D>;
}

export async function connectCri(socketPath: string): Promise<CriClients> {
  const proto = await loadCriProto();
  const address = `unix:${socketPath}`;
  const { RuntimeService, ImageService } = proto.runtime.v1;
  const runtime = new RuntimeService(address, credentials.createInsecure());
  const image = new ImageService(address, credentials.createInsecure());
  return {
    runtime: promisify(runtime, RuntimeService.service),
    image: promisify(image, ImageService.service),
    raw: { runtime, image },
    close: () => {
      runtime.close();
      image.close();
    },
  };
}

/** The ServiceError a call fails with; throws if it succeeds. */
export async function rejection(pending: Promise<unknown>): Promise<ServiceError> {
  try {
    await pending;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** CreateContainer in `pod` and then StartContainer; the running container's id. */
export async function createAndStart(
  cri: CriClients,
  pod: { id: string; config: PodSandboxConfig },
  config: ContainerConfig,
): Promise<string> {
  const { container_id } = await cri.runtime.CreateContainer(
    { pod_sandbox_id: pod.id, config, sandbox_config: pod.config },
    60_000,
  );
  await cri.runtime.StartContainer({ container_id }, 60_000);
  return container_id;
}

/** `sh -c script` in a container through ExecSync (10 s): its exit code, stdout and stderr. */
export async function execSh(
  cri: CriClients,
  id: string,
  script: string,
  opts: { trim?: boolean } = {},
): Promise<{ code: number; out: string; err: string }> {
  const res = await cri.runtime.ExecSync({ container_id: id, cmd: ['sh', '-c', script], timeout: '10' });
  const out = res.stdout.toString();
  return { code: res.exit_code, out: opts.trim === true ? out.trim() : out, err: res.stderr.toString() };
}

/** The host pid of a running container, from ContainerStatus verbose info. */
export async function containerPid(cri: CriClients, id: string): Promise<number> {
  const res = await cri.runtime.ContainerStatus({ container_id: id, verbose: true });
  const info = JSON.parse(res.info.info ?? '{}') as { pid?: number | null };
  if (typeof info.pid !== 'number' || info.pid <= 0) throw new Error(`container ${id} has no pid`);
  return info.pid;
}

/** The host pid of a pod's infra (pause) process, from PodSandboxStatus verbose info. */
export async function infraPid(cri: CriClients, podId: string): Promise<number> {
  const res = await cri.runtime.PodSandboxStatus({ pod_sandbox_id: podId, verbose: true });
  const info = JSON.parse(res.info.info ?? '{}') as { infraContainer?: { pid?: number | null } | null };
  const pid = info.infraContainer?.pid;
  if (typeof pid !== 'number' || pid <= 0) throw new Error(`pod ${podId} has no infra pid`);
  return pid;
}

/** Every message of a server stream, or its error. */
export function collect<T>(stream: ClientReadableStream<T>): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const got: T[] = [];
    stream.on('data', (m: T) => got.push(m));
    stream.on('error', reject);
    stream.on('end', () => {
      resolve(got);
    });
  });
}
