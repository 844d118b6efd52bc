/**
 * GetContainerEvents on the real daemon, as kubelet's evented PLEG uses it: a pod's whole life
 * (sandbox and application container) arrives in order, with strictly increasing wall-clock
 * timestamps and the pod's and containers' statuses as they were at each change; every client
 * gets every event; a client that goes away is forgotten; shutdown ends open streams with
 * UNAVAILABLE instead of waiting for them.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { ContainerEventResponse__Output } from '../../src/generated/runtime/v1/ContainerEventResponse.js';
import { connectCri, type CriClients } from './harness/cri-client.js';
import { makeTestDirs, removeTestDirs, startCrisp, type RunningCrisp } from './harness/daemon.js';
import { until } from './harness/host.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

interface EventReader {
  stream: ClientReadableStream<ContainerEventResponse__Output>;
  got: ContainerEventResponse__Output[];
  ended: Promise<ServiceError | 'end'>;
}

function openEvents(cri: CriClients): EventReader {
  const stream = cri.raw.runtime.GetContainerEvents({});
  const got: ContainerEventResponse__Output[] = [];
  stream.on('data', (m: ContainerEventResponse__Output) => got.push(m));
  const ended = new Promise<ServiceError | 'end'>((resolve) => {
    stream.on('error', resolve);
    stream.on('end', () => {
      resolve('end');
    });
  });
  return { stream, got, ended };
}

/** GetContainerEvents calls the daemon is serving (it subscribes before it lists the call). */
async function eventStreams(crisp: RunningCrisp): Promise<number> {
  const res = await fetch(`${crisp.metricsUrl}/debug/state`);
  const state = (await res.json()) as { inflight: { method: string }[] };
  return state.inflight.filter((c) => c.method === 'GetContainerEvents').length;
}

const streamsOpen = (crisp: RunningCrisp, n: number) =>
  until(`${n} event streams open`, async () => ((await eventStreams(crisp)) === n ? true : undefined));

const shortType = (m: ContainerEventResponse__Output) =>
  m.container_event_type.replace(/^CONTAINER_(\w+)_EVENT$/, '$1');

describe('GetContainerEvents on runc and conmon', () => {
  let setup: BusyboxSetup;
  let crisp: RunningCrisp;
  let cri: CriClients;
  let image: string;
  let logDir: string;

  before(async () => {
    setup = await startWithBusybox();
    ({ crisp, cri, image } = setup);
    logDir = join(setup.dirs.base, 'logs');
  });

  after(async () => {
    await setup.teardown();
  });

  it('reports a pod’s whole life in order, with the pod and container statuses', async () => {
    const first = openEvents(cri);
    const second = openEvents(cri);
    await streamsOpen(crisp, 2);
    const startNs = BigInt(Date.now()) * 1_000_000n;

    const config = {
      metadata: { name: 'events', namespace: 'e2e', uid: 'uid-events', attempt: 0 },
      hostname: 'events',
      log_directory: join(logDir, 'events'),
    };
    const { pod_sandbox_id: podId } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    const { container_id: ctrId } = await cri.runtime.CreateContainer(
      {
        pod_sandbox_id: podId,
        config: {
          metadata: { name: 'once', attempt: 0 },
          image: { image },
          command: ['true'],
          log_path: 'once.log',
        },
        sandbox_config: config,
      },
      60_000,
    );
    await cri.runtime.StartContainer({ container_id: ctrId }, 60_000);
    // `true` exits by itself: its STOPPED event comes from the exit monitor, not from an RPC.
    await until('the container’s STOPPED event', () =>
      Promise.resolve(
        first.got.some((m) => m.container_id === ctrId && shortType(m) === 'STOPPED') ? true : undefined,
      ),
    );
    await cri.runtime.StopContainer({ container_id: ctrId, timeout: 10 }, 60_000);
    await cri.runtime.RemoveContainer({ container_id: ctrId }, 60_000);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: podId }, 60_000);
    await until('the pod’s DELETED event', () =>
      Promise.resolve(
        first.got.some((m) => m.container_id === podId && shortType(m) === 'DELETED') ? true : undefined,
      ),
    );
    const endNs = BigInt(Date.now()) * 1_000_000n;

    const events = first.got;
    const mine = events.filter((m) => m.container_id === ctrId);
    const pods = events.filter((m) => m.container_id === podId);
    assert.deepEqual(
      events.map((m) => [
        shortType(m),
        m.container_id === podId ? 'pod' : m.container_id === ctrId ? 'ctr' : '?',
      ]),
      [
        ['CREATED', 'pod'],
        ['STARTED', 'pod'],
        ['CREATED', 'ctr'],
        ['STARTED', 'ctr'],
        ['STOPPED', 'ctr'],
        ['DELETED', 'ctr'],
        ['STOPPED', 'pod'],
        ['DELETED', 'pod'],
      ],
      'the app container and the sandbox (under the pod sandbox id), in the order things happened',
    );

    // Timestamps: wall-clock nanoseconds, strictly increasing along the stream.
    const stamps = events.map((m) => BigInt(m.created_at));
    for (let i = 1; i < stamps.length; i++) {
      assert.ok((stamps[i] ?? 0n) > (stamps[i - 1] ?? 0n), `created_at increases at event ${i}`);
    }
    assert.ok((stamps[0] ?? 0n) >= startNs && (stamps.at(-1) ?? 0n) <= endNs, 'created_at is wall-clock ns');

    // Every event carries the full pod status (kubelet drops events without one).
    for (const m of events) {
      const pod = m.pod_sandbox_status;
      assert.ok(pod, `${shortType(m)} ${m.container_id} has a pod status`);
      assert.equal(pod.id, podId);
      assert.deepEqual(pod.metadata, config.metadata);
    }

    // The container statuses as they were at each change.
    const appStatus = (m: ContainerEventResponse__Output | undefined) =>
      m?.containers_statuses.find((c) => c.id === ctrId);
    const [created, started, stopped, deleted] = mine;
    assert.equal(appStatus(created)?.state, 'CONTAINER_CREATED');
    assert.equal(appStatus(created)?.metadata?.name, 'once');
    assert.equal(created?.pod_sandbox_status?.state, 'SANDBOX_READY');
    assert.equal(appStatus(started)?.state, 'CONTAINER_RUNNING');
    assert.notEqual(appStatus(started)?.started_at, '0');
    assert.equal(appStatus(stopped)?.state, 'CONTAINER_EXITED');
    assert.equal(appStatus(stopped)?.exit_code, 0);
    assert.equal(appStatus(stopped)?.reason, 'Completed');
    assert.equal(appStatus(deleted), undefined, 'a deleted container is no longer among the statuses');
    assert.equal(deleted?.pod_sandbox_status?.state, 'SANDBOX_READY');
    for (const m of events) {
      assert.ok(
        m.containers_statuses.every((c) => c.id === ctrId),
        'only the pod’s application containers are listed (not the infra container)',
      );
    }
    assert.equal(
      pods[1]?.pod_sandbox_status?.state,
      'SANDBOX_READY',
      'the pod is ready when its STARTED arrives',
    );
    assert.deepEqual(
      pods.slice(2).map((m) => m.pod_sandbox_status?.state),
      ['SANDBOX_NOTREADY', 'SANDBOX_NOTREADY'],
      'the pod is not ready once its sandbox stopped',
    );

    // Every client gets the same stream.
    await until('the second client to catch up', () =>
      Promise.resolve(second.got.length >= events.length ? true : undefined),
    );
    assert.deepEqual(second.got, events);

    first.stream.cancel();
    second.stream.cancel();
    for (const r of [first, second]) {
      const end = await r.ended;
      assert.notEqual(end, 'end');
      assert.equal((end as ServiceError).code, GrpcCode.CANCELLED);
    }
    await streamsOpen(crisp, 0);
  });

  it('forgets a client that dies without cancelling (its connection just closes)', async () => {
    // Another process, as kubelet is: it subscribes, then is SIGKILLed.
    const clientModule = new URL('./harness/cri-client.js', import.meta.url).href;
    const script = [
      `import { connectCri } from ${JSON.stringify(clientModule)};`,
      `const cri = await connectCri(${JSON.stringify(crisp.dirs.socket)});`,
      `cri.raw.runtime.GetContainerEvents({}).on('data', () => undefined).on('error', () => undefined);`,
      'setInterval(() => undefined, 1000);',
    ].join('\n');
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    const gone = new Promise((resolve) => child.once('exit', resolve));
    try {
      await streamsOpen(crisp, 1);
    } finally {
      child.kill('SIGKILL');
      await gone;
    }
    await streamsOpen(crisp, 0);
    // The daemon goes on publishing to nobody and serving new clients.
    const next = openEvents(cri);
    await streamsOpen(crisp, 1);
    const { pod_sandbox_id: podId } = await cri.runtime.RunPodSandbox(
      {
        config: {
          metadata: { name: 'after', namespace: 'e2e', uid: 'uid-after', attempt: 0 },
          hostname: 'after',
          log_directory: join(logDir, 'after'),
        },
      },
      60_000,
    );
    await until('the new client’s first events', () =>
      Promise.resolve(next.got.filter((m) => m.container_id === podId).length >= 2 ? true : undefined),
    );
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: podId }, 60_000);
    next.stream.cancel();
    await next.ended;
    await streamsOpen(crisp, 0);
  });
});

describe('GetContainerEvents and daemon shutdown', () => {
  it('ends open event streams with UNAVAILABLE and does not wait for them', async () => {
    const dirs = await makeTestDirs();
    const crisp = await startCrisp(dirs);
    const cri = await connectCri(dirs.socket);
    try {
      const reader = openEvents(cri);
      await streamsOpen(crisp, 1);
      const t0 = Date.now();
      const exit = await crisp.stop();
      const tookMs = Date.now() - t0;
      assert.equal(exit.code, 0, exit.stderr);
      assert.ok(tookMs < 5_000, `shutdown took ${tookMs} ms (the grace for in-flight RPCs is 10 s)`);
      const end = await reader.ended;
      assert.notEqual(end, 'end');
      assert.equal((end as ServiceError).code, GrpcCode.UNAVAILABLE, (end as ServiceError).details);
      assert.match((end as ServiceError).details, /shutting down/);
      assert.ok(
        !crisp.logs.some((l) => /did not finish in time/.test(l.msg)),
        'no RPC had to be cancelled by force',
      );
    } finally {
      cri.close();
      await crisp.stop();
      await removeTestDirs(dirs);
    }
  });
});
