/**
 * Recovery never holds the node hostage: right after a restart crisp answers Version, List* and
 * *Status from its store, marks what it has not checked yet (verbose info recoveryPending), and
 * one broken container (its `runc state` hangs) delays no other; one whose conmon is gone keeps
 * running and its later exit is still noticed (exit code unknown: 255).
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectCri, containerPid, type CriClients } from './harness/cri-client.js';
import { spawnCrisp } from './harness/daemon.js';
import { processesMentioning, until } from './harness/host.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

describe('recovery isolates broken containers', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let scratch: string;
  let hangFlag: string;

  before(async () => {
    // A runtime handler whose `runc state` hangs while the flag file exists.
    scratch = await mkdtemp(join(tmpdir(), 'crisp-hang-runc-'));
    hangFlag = join(scratch, 'hang');
    const wrapper = join(scratch, 'hang-runc');
    await writeFile(
      wrapper,
      `#!/bin/sh\nfor a in "$@"; do if [ "$a" = state ] && [ -e ${hangFlag} ]; then exec sleep 3600; fi; done\nexec /usr/sbin/runc "$@"\n`,
    );
    await chmod(wrapper, 0o755);
    setup = await startWithBusybox(['[runtimes.hang]', `path = ${JSON.stringify(wrapper)}`].join('\n'));
    cri = setup.cri;
  });

  after(async () => {
    await rm(hangFlag, { force: true });
    await setup.teardown();
    await rm(scratch, { recursive: true, force: true });
  });

  const pending = async (id: string): Promise<boolean> => {
    const res = await cri.runtime.ContainerStatus({ container_id: id, verbose: true });
    return (JSON.parse(res.info.info ?? '{}') as { recoveryPending?: boolean }).recoveryPending === true;
  };
  const state = async (id: string) => (await cri.runtime.ContainerStatus({ container_id: id })).status?.state;

  it('serves at once, checks the healthy containers while a hung one times out, and watches one without conmon', async () => {
    const runPodWith = async (name: string, handler = '') => {
      const config = {
        metadata: { name, namespace: 'e2e-isolation', uid: `uid-${name}`, attempt: 0 },
        hostname: name,
      };
      const { pod_sandbox_id } = await cri.runtime.RunPodSandbox(
        { config, runtime_handler: handler },
        60_000,
      );
      const { container_id } = await cri.runtime.CreateContainer(
        {
          pod_sandbox_id,
          config: { metadata: { name: 'c' }, image: { image: setup.image }, command: ['sleep', '1000'] },
          sandbox_config: config,
        },
        60_000,
      );
      await cri.runtime.StartContainer({ container_id }, 60_000);
      return { pod: pod_sandbox_id, ctr: container_id };
    };
    const hung = await runPodWith('hung', 'hang');
    const healthy = [await runPodWith('ok1'), await runPodWith('ok2'), await runPodWith('ok3')];
    const orphan = await runPodWith('no-conmon');
    const orphanPid = await containerPid(cri, orphan.ctr);

    cri.close();
    await setup.crisp.kill();
    await writeFile(hangFlag, '');
    // The conmon of one container dies while crisp is down; its container keeps running.
    for (const pid of await processesMentioning(orphan.ctr)) {
      if (pid !== orphanPid) process.kill(pid, 'SIGKILL');
    }

    setup.crisp = spawnCrisp(setup.dirs);
    await setup.crisp.ready();
    cri = setup.cri = await connectCri(setup.dirs.socket);
    // Answered from the store while the recovery runs.
    assert.ok((await cri.runtime.Version({})).runtime_name.length > 0);
    assert.equal((await cri.runtime.ListPodSandbox({})).items.length, 5);
    assert.equal((await cri.runtime.ListContainers({})).containers.length, 5);
    assert.equal(await state(hung.ctr), 'CONTAINER_RUNNING');
    assert.equal(await pending(hung.ctr), true, 'the hung container is marked as not yet checked');

    // The healthy ones are checked while the hung one is still pending.
    for (const h of healthy) {
      await until(`container ${h.ctr} to be checked`, async () =>
        (await pending(h.ctr)) ? undefined : true,
      );
    }
    assert.equal(await pending(hung.ctr), true, 'the hung container did not hold the others up');
    assert.equal(await state(orphan.ctr), 'CONTAINER_RUNNING', 'a container without conmon still runs');

    const done = await setup.crisp.recovered();
    // The hung pod's infra container and its app container run on the hanging runtime.
    assert.equal((done.containers as Record<string, number>).failed, 2, JSON.stringify(done));
    assert.ok(
      setup.crisp.logs.some(
        (l) =>
          l.msg === 'could not recover the container; it is reported as recorded and tried again shortly' &&
          l.containerId === hung.ctr,
      ),
    );

    // Its process ends: noticed without conmon, with the unknown exit code.
    process.kill(orphanPid, 'SIGKILL');
    await until('the conmon-less container to be seen exited', async () =>
      (await state(orphan.ctr)) === 'CONTAINER_EXITED' ? true : undefined,
    );
    const s = (await cri.runtime.ContainerStatus({ container_id: orphan.ctr })).status;
    assert.equal(s?.exit_code, 255);
    assert.equal(s.reason, 'Unknown');

    // Once its runtime answers again, the hung container is checked on the next retry.
    await rm(hangFlag);
    await until(
      'the hung container to be checked',
      async () => ((await pending(hung.ctr)) ? undefined : true),
      40_000,
    );
    assert.equal(await state(hung.ctr), 'CONTAINER_RUNNING');
    for (const p of (await cri.runtime.ListPodSandbox({})).items) {
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
    }
  });
});
