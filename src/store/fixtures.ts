/**
 * Sample records and a temporary directory helper for the store's tests (and for engines' tests that
 * need plausible records). Not used by the daemon.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { RecordInput } from './records.js';

/** A 64-hex id built from a short tag, so tests read well and ids look real. */
export function testId(tag: string): string {
  return Buffer.from(tag).toString('hex').padEnd(64, '0').slice(0, 64);
}

export const T0 = '1700000000000000000';

export function sandboxConfig(id: string, name = 'web'): RecordInput<'sandboxConfig'> {
  return {
    id,
    name,
    namespace: 'default',
    uid: `uid-${name}`,
    attempt: 0,
    labels: { app: name },
    annotations: {},
    runtimeHandler: '',
    hostname: name,
    logDirectory: `/var/log/pods/default_${name}_${id.slice(0, 8)}`,
    hostNetwork: false,
    hostPid: false,
    hostIpc: false,
    privileged: false,
    netnsPath: `/run/crisp/netns/${id}`,
    cgroupParent: '',
    criConfig: { metadata: { name } },
    createdAt: T0,
  };
}

export function containerConfig(
  id: string,
  sandboxId: string,
  name = 'nginx',
): RecordInput<'containerConfig'> {
  return {
    id,
    sandboxId,
    name,
    attempt: 0,
    image: 'docker.io/library/nginx:1.27',
    imageRef: `sha256:${testId('nginx-image')}`,
    kind: 'app',
    labels: { 'io.kubernetes.container.name': name },
    annotations: {},
    logPath: `/var/log/pods/default_web/${name}/0.log`,
    mounts: [],
    tty: false,
    stdin: false,
    stdinOnce: false,
    stopSignal: 'SIGTERM',
    criConfig: { metadata: { name } },
    createdAt: T0,
  };
}

export function image(id: string): RecordInput<'image'> {
  return {
    id,
    repoTags: ['docker.io/library/nginx:1.27'],
    repoDigests: [`docker.io/library/nginx@${id}`],
    size: '73400320',
    layers: [
      {
        digest: `sha256:${testId('layer-blob')}`,
        diffId: `sha256:${testId('layer-diff')}`,
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        size: 73400000,
      },
    ],
    blobs: [`sha256:${testId('manifest')}`],
    run: {
      user: '',
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      entrypoint: ['/docker-entrypoint.sh'],
      cmd: ['nginx', '-g', 'daemon off;'],
      workingDir: '/',
      stopSignal: 'SIGQUIT',
      volumes: [],
      exposedPorts: ['80/tcp'],
      labels: {},
    },
    os: 'linux',
    architecture: 'amd64',
    pinned: false,
    createdAt: T0,
  };
}

export function intent(id: string, target: string): RecordInput<'intent'> {
  return { id, op: 'create-container', target, step: 'rootfs-mounted', data: { mount: '/x' }, createdAt: T0 };
}

/** Runs `fn` in a fresh directory under the OS temp dir, removed afterwards whatever happens. */
export async function withTempDir<R>(fn: (dir: string) => Promise<R>): Promise<R> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'crisp-store-'));
  try {
    return await fn(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
