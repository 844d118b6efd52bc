/**
 * Reads never wait on slow work: while one pod's OCI runtime hangs in every call, List* and
 * *Status for other objects still answer from memory within milliseconds.
 */
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectCri, type CriClients } from './harness/cri-client.js';
import {
  makeTestDirs,
  removeTestDirs,
  startCrisp,
  type RunningCrisp,
  type TestDirs,
} from './harness/daemon.js';
import { startRegistry, type TestRegistry } from './harness/registry.js';
import { busyboxImage } from './harness/test-images.js';

describe('reads while the runtime is slow', () => {
  let registry: TestRegistry;
  let crisp: RunningCrisp;
  let dirs: TestDirs;
  let cri: CriClients;

  before(async () => {
    registry = await startRegistry();
    await registry.push('library/busybox', '1.0', await busyboxImage());
    dirs = await makeTestDirs();
    // A runtime handler whose runc takes 3 s for every call.
    const slowRunc = join(dirs.base, 'slow-runc');
    await writeFile(slowRunc, '#!/bin/sh\nsleep 3\nexec /usr/sbin/runc "$@"\n');
    await chmod(slowRunc, 0o755);
    const registriesConf = join(dirs.base, 'registries.conf');
    await writeFile(registriesConf, `[[registry]]\nlocation = "${registry.host}"\ninsecure = true\n`);
    crisp = await startCrisp(dirs, {
      extraToml: [
        '[runtimes.slow]',
        `path = ${JSON.stringify(slowRunc)}`,
        '[image]',
        `registries_config = ${JSON.stringify(registriesConf)}`,
      ].join('\n'),
    });
    cri = await connectCri(dirs.socket);
    await cri.image.PullImage({ image: { image: `${registry.host}/library/busybox:1.0` } }, 60_000);
  });

  after(async () => {
    for (const p of (await cri.runtime.ListPodSandbox({})).items) {
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 120_000).catch(() => undefined);
    }
    cri.close();
    await crisp.stop();
    await registry.stop();
    await removeTestDirs(dirs);
  });

  it('answers List* and *Status quickly while another pod waits on its runtime', async () => {
    const meta = (name: string) => ({ name, namespace: 'e2e', uid: `uid-${name}`, attempt: 0 });
    const fast = await cri.runtime.RunPodSandbox(
      { config: { metadata: meta('fast'), hostname: 'fast' } },
      60_000,
    );
    const ctr = await cri.runtime.CreateContainer(
      {
        pod_sandbox_id: fast.pod_sandbox_id,
        config: {
          metadata: { name: 'c' },
          image: { image: `${registry.host}/library/busybox:1.0` },
          command: ['sleep', '1000'],
        },
      },
      60_000,
    );
    await cri.runtime.StartContainer({ container_id: ctr.container_id });

    const slowRun = cri.runtime.RunPodSandbox(
      { config: { metadata: meta('slow'), hostname: 'slow' }, runtime_handler: 'slow' },
      120_000,
    );
    // Let the slow pod get going, then measure reads while its runc calls hang.
    await new Promise((r) => setTimeout(r, 500));
    const samples: number[] = [];
    for (let i = 0; i < 40; i++) {
      for (const call of [
        () => cri.runtime.ListPodSandbox({}),
        () => cri.runtime.ListContainers({}),
        () => cri.runtime.ContainerStatus({ container_id: ctr.container_id }),
        () => cri.runtime.PodSandboxStatus({ pod_sandbox_id: fast.pod_sandbox_id }),
      ]) {
        const t0 = performance.now();
        await call();
        samples.push(performance.now() - t0);
      }
    }
    const slowest = Math.max(...samples);
    assert.ok(slowest < 500, `slowest read took ${slowest.toFixed(1)} ms while the runtime hung`);
    const listed = await cri.runtime.ListPodSandbox({});
    assert.ok(
      listed.items.some((p) => p.metadata?.name === 'slow'),
      'the slow pod is listed while it is being created',
    );
    const slow = await slowRun;
    const status = await cri.runtime.PodSandboxStatus({ pod_sandbox_id: slow.pod_sandbox_id });
    assert.equal(status.status?.state, 'SANDBOX_READY');
  });
});
