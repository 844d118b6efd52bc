/**
 * Reads never wait on slow work: while one pod's OCI runtime hangs in every call, List* and
 * *Status for other objects still answer from memory within milliseconds.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CriClients } from './harness/cri-client.js';
import type { TestRegistry } from './harness/registry.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

describe('reads while the runtime is slow', () => {
  let setup: BusyboxSetup;
  let registry: TestRegistry;
  let cri: CriClients;
  let cleanupScratch: () => Promise<void>;

  before(async () => {
    // A runtime handler whose runc takes 3 s for every call.
    const scratch = await mkdtemp(join(tmpdir(), 'crisp-slow-runc-'));
    const slowRunc = join(scratch, 'slow-runc');
    await writeFile(slowRunc, '#!/bin/sh\nsleep 3\nexec /usr/sbin/runc "$@"\n');
    await chmod(slowRunc, 0o755);
    setup = await startWithBusybox(['[runtimes.slow]', `path = ${JSON.stringify(slowRunc)}`].join('\n'));
    ({ registry, cri } = setup);
    cleanupScratch = () => rm(scratch, { recursive: true, force: true });
  });

  after(async () => {
    await setup.teardown();
    await cleanupScratch();
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
