/**
 * Crash safety: the real daemon is SIGKILLed at failpoints inside every multi-step RPC
 * (CRISP_FAILPOINTS, src/util/failpoint.ts) and started again; after its recovery nothing
 * half-made is reported, nothing is leaked (checked on the node: netns, CNI cache and leases,
 * veths, mounts, conmon processes, runtime state, bundles, partial layers) and the RPC works when
 * retried. Containers keep running across restarts with their pid, start time and log; exits
 * while crisp is down are reported with their real codes; a node restart (run dir wiped) leaves
 * exited containers and NOTREADY pods that stop and remove cleanly.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCommand } from '../../src/util/command.js';
import { connectCri, type CriClients } from './harness/cri-client.js';
import { spawnCrisp } from './harness/daemon.js';
import { mountsUnder, processesMentioning, sleep, until } from './harness/host.js';
import { assertNoLeaks, debugState, nodeTraces } from './harness/node-traces.js';
import { layeredImage } from './harness/test-images.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

describe('recovery after SIGKILL at any step', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let layered: string;
  let podCount = 0;
  const passed: string[] = [];
  /** What the orphan reconciler's start-up pass removed after each crash, by kind. */
  const orphansAfterCrash = new Map<string, Record<string, number>>();

  /** crisp_orphans_cleaned_total by kind, from the running daemon's /metrics. */
  const orphansCleaned = async (): Promise<Record<string, number>> => {
    const text = await (await fetch(`${setup.crisp.metricsUrl}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^crisp_orphans_cleaned_total\{kind="([a-z_]+)"\} (\d+)$/gm)) {
      const n = Number(m[2]);
      if (n > 0) out[m[1] ?? ''] = n;
    }
    return out;
  };

  const podConfig = (name = `pod${++podCount}`) => ({
    metadata: { name, namespace: 'e2e-recovery', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: join(setup.dirs.base, 'logs', name),
  });
  type PodConfig = ReturnType<typeof podConfig>;
  const runPod = async (config: PodConfig = podConfig()) => {
    const { pod_sandbox_id: id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    return { id, config };
  };
  type Pod = Awaited<ReturnType<typeof runPod>>;
  // kubelet's shape: the container in a PID namespace of its own (its command is pid 1).
  const ctrConfig = (name: string, command: string[]) => ({
    metadata: { name, attempt: 0 },
    image: { image: setup.image },
    command,
    log_path: `${name}.log`,
    linux: { security_context: { namespace_options: { pid: 'CONTAINER' as const } } },
  });
  const create = async (pod: Pod, name: string, command: string[]) =>
    (
      await cri.runtime.CreateContainer(
        { pod_sandbox_id: pod.id, config: ctrConfig(name, command), sandbox_config: pod.config },
        60_000,
      )
    ).container_id;
  const createStarted = async (pod: Pod, name: string, command: string[]) => {
    const id = await create(pod, name, command);
    await cri.runtime.StartContainer({ container_id: id });
    return id;
  };
  /** The pid crisp records for a container (infra containers included), from /debug/state. */
  const recordedPid = async (id: string) =>
    (await debugState(setup.crisp)).containers.find((c) => c.id === id)?.pid;
  const status = async (id: string) => (await cri.runtime.ContainerStatus({ container_id: id })).status;
  const podState = async (id: string) =>
    (await cri.runtime.PodSandboxStatus({ pod_sandbox_id: id })).status?.state;
  const podsNamed = async (name: string) =>
    (await cri.runtime.ListPodSandbox({})).items.filter((p) => p.metadata?.name === name);
  const containersNamed = async (podId: string, name: string) =>
    (await cri.runtime.ListContainers({ filter: { pod_sandbox_id: podId } })).containers.filter(
      (c) => c.metadata?.name === name,
    );

  /** SIGKILLs the daemon if it still runs, starts it again (with `failpoints` armed) and reconnects. */
  async function restart(failpoints = ''): Promise<void> {
    cri.close();
    await setup.crisp.kill();
    setup.crisp = spawnCrisp(
      setup.dirs,
      undefined,
      failpoints === '' ? {} : { CRISP_FAILPOINTS: failpoints },
    );
    await setup.crisp.ready();
    cri = setup.cri = await connectCri(setup.dirs.socket);
  }

  /**
   * Arms `failpoint`, runs the RPC, which must not answer because the daemon kills itself there,
   * then starts a clean daemon and waits for its recovery.
   */
  async function crashAt(failpoint: string, rpc: () => Promise<unknown>): Promise<void> {
    await restart(failpoint);
    await setup.crisp.recovered();
    const answered = await rpc().then(
      () => true,
      () => false,
    );
    assert.equal(answered, false, `${failpoint}: the RPC must not answer`);
    const exit = await setup.crisp.waitExit(30_000);
    assert.equal(exit.signal, 'SIGKILL', `${failpoint}: crisp died at the failpoint`);
    assert.ok(
      setup.crisp.logs.some((l) => l.msg === 'failpoint reached: killing crisp' && l.failpoint === failpoint),
      `${failpoint} was reached`,
    );
    await restart();
    await setup.crisp.recovered();
    // The journal and the recovery leave nothing for the garbage collector: what a cut-short pull
    // downloaded is the only thing left to it (by design: its blobs and layers belong to no image).
    const orphans = await orphansCleaned();
    orphansAfterCrash.set(failpoint, orphans);
    const allowed = failpoint.startsWith('pull-image:') ? ['blob', 'layer', 'tmp'] : [];
    for (const kind of Object.keys(orphans)) {
      assert.ok(allowed.includes(kind), `${failpoint}: the restart found orphans ${JSON.stringify(orphans)}`);
    }
  }

  let base: Pod;

  before(async () => {
    setup = await startWithBusybox();
    cri = setup.cri;
    await setup.registry.push('library/layered', '1.0', await layeredImage());
    layered = `${setup.registry.host}/library/layered:1.0`;
    base = await runPod(podConfig('base'));
  });

  after(async () => {
    console.log(`crash points passed: ${passed.length}: ${passed.join(', ')}`);
    console.log(
      `orphans the restart after each crash found: ${JSON.stringify(Object.fromEntries(orphansAfterCrash))}`,
    );
    await setup.teardown();
  });

  for (const failpoint of [
    'run-pod:after-record',
    'run-pod:after-netns',
    'cni-add:before-cache',
    'run-pod:after-cni-add',
    'create-infra:after-rootfs',
    'create-infra:after-runtime-create',
    'run-pod:after-infra-create',
    'start-infra:after-runtime-start',
    'run-pod:before-ready',
  ]) {
    it(`RunPodSandbox killed at ${failpoint}: rolled back, nothing leaked, the retry works`, async () => {
      const config = podConfig();
      await crashAt(failpoint, () => runPod(config));
      assert.deepEqual(await podsNamed(config.metadata.name), [], 'the half-made pod is gone');
      await assertNoLeaks(setup.crisp, failpoint);
      const pod = await runPod(config);
      assert.equal(await podState(pod.id), 'SANDBOX_READY');
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
      await assertNoLeaks(setup.crisp, `${failpoint}, after the retry`);
      passed.push(failpoint);
    });
  }

  for (const failpoint of [
    'create-app:after-record',
    'create-app:after-rootfs',
    'create-app:after-runtime-create',
  ]) {
    it(`CreateContainer killed at ${failpoint}: rolled back, the retry works`, async () => {
      const name = `c-${failpoint.split(':')[1] ?? ''}`;
      await crashAt(failpoint, () => create(base, name, ['sleep', '1000']));
      assert.deepEqual(await containersNamed(base.id, name), [], 'the half-made container is gone');
      assert.equal(await podState(base.id), 'SANDBOX_READY', 'its pod is still ready');
      await assertNoLeaks(setup.crisp, failpoint);
      const id = await createStarted(base, name, ['sleep', '1000']);
      assert.equal((await status(id))?.state, 'CONTAINER_RUNNING');
      await cri.runtime.RemoveContainer({ container_id: id }, 60_000);
      await assertNoLeaks(setup.crisp, `${failpoint}, after the retry`);
      passed.push(failpoint);
    });
  }

  it('StartContainer killed after runc start: RUNNING with the process’s own start time', async () => {
    const failpoint = 'start-app:after-runtime-start';
    const id = await create(base, 'started', ['sleep', '1000']);
    const before = BigInt(Date.now()) * 1_000_000n;
    await crashAt(failpoint, () => cri.runtime.StartContainer({ container_id: id }));
    const s = await status(id);
    assert.equal(s?.state, 'CONTAINER_RUNNING');
    const started = BigInt(s.started_at);
    assert.ok(
      started >= before - 1_000_000_000n && started <= BigInt(Date.now()) * 1_000_000n,
      `started_at ${started}`,
    );
    await assertNoLeaks(setup.crisp, failpoint);
    await cri.runtime.RemoveContainer({ container_id: id }, 60_000);
    passed.push(failpoint);
  });

  it('StopContainer killed after the stop signal: still running, same pid; a second stop works', async () => {
    const failpoint = 'stop-app:after-signal';
    // sleep as pid 1 ignores SIGTERM: only the escalation would end it.
    const id = await createStarted(base, 'stubborn', ['sleep', '1000']);
    const pid = await recordedPid(id);
    await crashAt(failpoint, () => cri.runtime.StopContainer({ container_id: id, timeout: '30' }, 60_000));
    assert.equal((await status(id))?.state, 'CONTAINER_RUNNING');
    assert.equal(await recordedPid(id), pid);
    await assertNoLeaks(setup.crisp, failpoint);
    await cri.runtime.StopContainer({ container_id: id, timeout: '0' }, 60_000);
    assert.equal((await status(id))?.exit_code, 137);
    await cri.runtime.RemoveContainer({ container_id: id }, 60_000);
    passed.push(failpoint);
  });

  it('StopContainer killed right after SIGKILL: EXITED 137 from conmon’s exit file', async () => {
    const failpoint = 'stop-app:after-kill';
    const id = await createStarted(base, 'killed', ['sleep', '1000']);
    await crashAt(failpoint, () => cri.runtime.StopContainer({ container_id: id, timeout: '0' }, 60_000));
    const s = await status(id);
    assert.equal(s?.state, 'CONTAINER_EXITED');
    assert.equal(s.exit_code, 137);
    assert.ok(BigInt(s.finished_at) >= BigInt(s.started_at));
    await assertNoLeaks(setup.crisp, failpoint);
    await cri.runtime.RemoveContainer({ container_id: id }, 60_000);
    passed.push(failpoint);
  });

  it('RemoveContainer killed after recording removing: finished by recovery', async () => {
    const failpoint = 'remove-app:after-removing';
    const id = await createStarted(base, 'doomed', ['sleep', '1000']);
    await crashAt(failpoint, () => cri.runtime.RemoveContainer({ container_id: id }, 60_000));
    assert.deepEqual(await containersNamed(base.id, 'doomed'), []);
    await assertNoLeaks(setup.crisp, failpoint);
    await cri.runtime.RemoveContainer({ container_id: id }, 60_000);
    passed.push(failpoint);
  });

  for (const failpoint of ['stop-pod:after-containers', 'stop-pod:after-cni-del']) {
    it(`StopPodSandbox killed at ${failpoint}: finished by recovery (NOTREADY, network released)`, async () => {
      const pod = await runPod();
      const ctr = await createStarted(pod, 'app', ['sleep', '1000']);
      await crashAt(failpoint, () => cri.runtime.StopPodSandbox({ pod_sandbox_id: pod.id }, 60_000));
      assert.equal(await podState(pod.id), 'SANDBOX_NOTREADY');
      assert.equal((await status(ctr))?.state, 'CONTAINER_EXITED');
      const traces = await assertNoLeaks(setup.crisp, failpoint);
      assert.ok(!traces.cniCache.includes(pod.id), 'its CNI attachment was released');
      await cri.runtime.StopPodSandbox({ pod_sandbox_id: pod.id }, 60_000);
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
      passed.push(failpoint);
    });
  }

  for (const failpoint of ['remove-pod:after-containers', 'remove-pod:after-netns']) {
    it(`RemovePodSandbox killed at ${failpoint}: finished by recovery`, async () => {
      const pod = await runPod();
      await createStarted(pod, 'app', ['sleep', '1000']);
      await crashAt(failpoint, () => cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000));
      assert.deepEqual(await podsNamed(pod.config.metadata.name), []);
      assert.deepEqual(await containersNamed(pod.id, 'app'), [], 'its container is gone too');
      await assertNoLeaks(setup.crisp, failpoint);
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
      passed.push(failpoint);
    });
  }

  for (const failpoint of ['pull-image:after-layer', 'pull-image:before-commit']) {
    it(`PullImage killed at ${failpoint}: no image, no partial layer; the retry works`, async () => {
      await crashAt(failpoint, () => cri.image.PullImage({ image: { image: layered } }, 60_000));
      const listed = (await cri.image.ListImages({})).images.flatMap((i) => i.repo_tags);
      assert.ok(!listed.includes(layered), `${layered} is not listed: ${listed.join(', ')}`);
      await assertNoLeaks(setup.crisp, failpoint);
      const { image_ref } = await cri.image.PullImage({ image: { image: layered } }, 60_000);
      assert.match(image_ref, /^sha256:/);
      await cri.image.RemoveImage({ image: { image: layered } });
      passed.push(failpoint);
    });
  }

  it('keeps a running container’s pid, start time and log across 3 restarts', async () => {
    const pod = await runPod();
    const id = await createStarted(pod, 'ticker', [
      'sh',
      '-c',
      'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done',
    ]);
    const first = await status(id);
    const pid = await recordedPid(id);
    assert.ok(typeof pid === 'number' && pid > 0);
    for (let round = 0; round < 3; round++) {
      await restart();
      // Served at once, before (and while) the recovery checks it.
      assert.equal((await status(id))?.state, 'CONTAINER_RUNNING');
      await setup.crisp.recovered();
      const s = await status(id);
      assert.equal(s?.state, 'CONTAINER_RUNNING', `round ${round}`);
      assert.equal(s.started_at, first?.started_at, `round ${round}: start time kept`);
      assert.equal(await recordedPid(id), pid);
      await sleep(300);
    }
    const ticks = (await readFile(first?.log_path ?? '', 'utf8'))
      .split('\n')
      .filter((l) => l.includes(' stdout F tick '))
      .map((l) => Number(l.split(' tick ')[1]));
    assert.ok(ticks.length > 10, `ticks logged: ${ticks.length}`);
    ticks.forEach((n, i) => {
      assert.equal(n, i, 'the log has every tick, in order, across the restarts');
    });
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
  });

  it('reports a container that exited while crisp was down with its real exit code and time', async () => {
    const pod = await runPod();
    const id = await createStarted(pod, 'brief', ['sh', '-c', 'sleep 1; exit 7']);
    cri.close();
    await setup.crisp.kill();
    const down = BigInt(Date.now()) * 1_000_000n;
    await sleep(2_500);
    setup.crisp = spawnCrisp(setup.dirs);
    await setup.crisp.ready();
    cri = setup.cri = await connectCri(setup.dirs.socket);
    await setup.crisp.recovered();
    const s = await status(id);
    assert.equal(s?.state, 'CONTAINER_EXITED');
    assert.equal(s.exit_code, 7);
    assert.equal(s.reason, 'Error');
    const finished = BigInt(s.finished_at);
    assert.ok(finished > down && finished < down + 2_500_000_000n, `finished_at ${finished} while down`);
    await assertNoLeaks(setup.crisp, 'exit while down');
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, 60_000);
  });

  it('Stop and Remove succeed when repeated, for unknown ids, and when the infra container or netns vanished', async () => {
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: 'f'.repeat(64) });
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: 'f'.repeat(64) });
    await cri.runtime.RemoveContainer({ container_id: 'f'.repeat(64) });

    // The netns unmounted and deleted behind crisp's back.
    const a = await runPod();
    const netnsFile = join(setup.dirs.run, 'netns', a.id);
    await runCommand('umount', [netnsFile]);
    await rm(netnsFile);
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: a.id }, 60_000);
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: a.id }, 60_000);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: a.id }, 60_000);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: a.id }, 60_000);

    // The infra container killed and its runtime state deleted behind crisp's back, conmon too.
    const b = await runPod();
    const infra = (await debugState(setup.crisp)).containers.find(
      (c) => c.pod === b.id && c.kind === 'infra',
    );
    assert.ok(infra);
    for (const pid of await processesMentioning(infra.id)) process.kill(pid, 'SIGKILL');
    await runCommand('runc', ['--root', join(setup.dirs.run, 'runc'), 'delete', '--force', infra.id]).catch(
      () => undefined,
    );
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: b.id }, 60_000);
    assert.equal(await podState(b.id), 'SANDBOX_NOTREADY');
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: b.id }, 60_000);
    await assertNoLeaks(setup.crisp, 'vanished parts');
  });

  it('after a node restart (run dir gone): containers EXITED (255, Unknown), pods NOTREADY, then removed cleanly', async () => {
    const pod = await runPod();
    const id = await createStarted(pod, 'app', ['sleep', '1000']);
    const ready = (await cri.runtime.ListPodSandbox({})).items.filter((p) => p.state === 'SANDBOX_READY');
    cri.close();
    await setup.crisp.kill();
    // What a reboot does: every process and mount gone, /run empty.
    for (const pid of await processesMentioning(setup.dirs.run)) process.kill(pid, 'SIGKILL');
    await runCommand('runc', ['--root', join(setup.dirs.run, 'runc'), 'list', '-q']).then(
      async ({ stdout }) => {
        for (const c of stdout.split('\n').filter((l) => l !== '')) {
          await runCommand('runc', ['--root', join(setup.dirs.run, 'runc'), 'delete', '--force', c]);
        }
      },
    );
    for (const m of (await mountsUnder(setup.dirs.run)).sort((x, y) => y.length - x.length)) {
      await runCommand('umount', ['-l', m]);
    }
    await rm(setup.dirs.run, { recursive: true, force: true });
    setup.crisp = spawnCrisp(setup.dirs);
    await setup.crisp.ready();
    cri = setup.cri = await connectCri(setup.dirs.socket);
    await setup.crisp.recovered();
    const s = await status(id);
    assert.equal(s?.state, 'CONTAINER_EXITED');
    assert.equal(s.exit_code, 255);
    assert.equal(s.reason, 'Unknown');
    for (const p of ready) assert.equal(await podState(p.id), 'SANDBOX_NOTREADY', `pod ${p.id}`);
    // kubelet then stops and removes them, and creates new ones.
    for (const p of (await cri.runtime.ListPodSandbox({})).items) {
      await cri.runtime.StopPodSandbox({ pod_sandbox_id: p.id }, 60_000);
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
    }
    const fresh = await runPod();
    assert.equal(await podState(fresh.id), 'SANDBOX_READY');
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: fresh.id }, 60_000);
    base = await runPod(podConfig('base-again'));
  });

  it('leaves nothing on the node once every pod is removed', async () => {
    for (const p of (await cri.runtime.ListPodSandbox({})).items) {
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
    }
    await until('the last conmon to go', async () =>
      (await processesMentioning(setup.dirs.run)).length === 0 ? true : undefined,
    );
    const traces = await nodeTraces(setup.dirs);
    assert.deepEqual(traces, {
      netns: [],
      cniCache: [],
      leases: [],
      mounts: [],
      conmons: [],
      bundles: [],
      containerDirs: [],
      runcStates: [],
      layerTemps: [],
      veths: 0,
    });
    assert.equal((await debugState(setup.crisp)).store.intents, 0);
  });
});
