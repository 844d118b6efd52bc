import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  Server,
  ServerCredentials,
  credentials,
  status as GrpcCode,
  type ClientReadableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import { ContainerEventBus, type ContainerEventType } from '../../container/events.js';
import { CanceledError, ResourceExhaustedError } from '../../errors.js';
import type { ContainerEventResponse } from '../../generated/runtime/v1/ContainerEventResponse.js';
import type { ContainerEventResponse__Output } from '../../generated/runtime/v1/ContainerEventResponse.js';
import type { RuntimeServiceClient } from '../../generated/runtime/v1/RuntimeService.js';
import { createLogger } from '../../log/logger.js';
import { InflightTracker } from '../../metrics/inflight.js';
import { createMetrics } from '../../metrics/registry.js';
import { StoreBatch } from '../../store/batch.js';
import { FakeStateStore } from '../../store/fake-state-store.js';
import { T0, containerConfig, sandboxConfig, testId } from '../../store/fixtures.js';
import type { SandboxState } from '../../store/records.js';
import type { CriContext } from '../context.js';
import { serverStream, type StreamScope } from '../handler.js';
import { loadCriProto } from '../proto.js';
import { getContainerEvents, toContainerEventResponse } from './get-container-events.js';

const POD = testId('pod');
const APP = testId('app');
const INFRA = testId('infra');

async function podStore(sandboxState: SandboxState = 'ready'): Promise<FakeStateStore> {
  const store = new FakeStateStore();
  await store.commit(
    new StoreBatch()
      .putSandboxConfig(sandboxConfig(POD))
      .putSandboxState(POD, { state: sandboxState, updatedAt: T0 })
      .putContainerConfig({ ...containerConfig(INFRA, POD, 'POD'), kind: 'infra', logPath: '' })
      .putContainerState(INFRA, { state: 'running', updatedAt: T0 })
      .putContainerConfig(containerConfig(APP, POD))
      .putContainerState(APP, { state: 'running', updatedAt: T0, startedAt: T0 }),
  );
  return store;
}

const app = (type: ContainerEventType) => ({ type, containerId: APP, sandboxId: POD, kind: 'app' as const });
const infra = (type: ContainerEventType) => ({
  type,
  containerId: INFRA,
  sandboxId: POD,
  kind: 'infra' as const,
});

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('toContainerEventResponse', () => {
  it('reports an application container with its pod and the pod’s application containers', async () => {
    const bus = new ContainerEventBus(await podStore(), { now: () => 1_700_000_000_123_456_789n });
    const sub = bus.subscribe();
    bus.publish(app('STARTED'));
    const event = await sub.next();
    assert.ok(event);
    const msg = toContainerEventResponse(event);
    assert.equal(msg.container_id, APP);
    assert.equal(msg.container_event_type, 'CONTAINER_STARTED_EVENT');
    assert.equal(msg.created_at, '1700000000123456789');
    const pod = msg.pod_sandbox_status;
    assert.ok(pod);
    assert.equal(pod.id, POD);
    assert.equal(pod.state, 'SANDBOX_READY');
    assert.equal(pod.metadata?.uid, 'uid-web');
    assert.deepEqual(
      msg.containers_statuses?.map((c) => [c.id, c.state]),
      [[APP, 'CONTAINER_RUNNING']],
      'the infra container is not a container status',
    );
  });

  it('reports the infra container under the pod sandbox id (as kubelet expects)', async () => {
    const bus = new ContainerEventBus(await podStore('notready'));
    const sub = bus.subscribe();
    bus.publish(infra('STOPPED'));
    const event = await sub.next();
    assert.ok(event);
    const msg = toContainerEventResponse(event);
    assert.equal(msg.container_id, POD);
    assert.equal(msg.container_event_type, 'CONTAINER_STOPPED_EVENT');
    assert.equal(msg.pod_sandbox_status?.state, 'SANDBOX_NOTREADY');
  });

  it('sends a null pod status once the pod’s records are gone', async () => {
    const store = await podStore();
    const bus = new ContainerEventBus(store);
    const sub = bus.subscribe();
    await store.commit(new StoreBatch().delContainer(APP).delContainer(INFRA).delSandbox(POD));
    bus.publish(app('DELETED'));
    const event = await sub.next();
    assert.ok(event);
    const msg = toContainerEventResponse(event);
    assert.equal(msg.pod_sandbox_status, null);
    assert.deepEqual(msg.containers_statuses, []);
  });
});

/** A fake stream: `send` accepts `room` messages, then reports a full buffer until drain(). */
function fakeStream(room = Infinity) {
  const controller = new AbortController();
  const sent: ContainerEventResponse[] = [];
  let buffered = 0;
  let drain: (() => void) | undefined;
  const scope: StreamScope = {
    signal: controller.signal,
    drained: (until) =>
      buffered < room || until?.aborted === true
        ? Promise.resolve()
        : new Promise((resolve) => {
            drain = resolve;
            until?.addEventListener('abort', () => {
              resolve();
            });
          }),
  };
  return {
    sent,
    scope,
    send: (msg: ContainerEventResponse): boolean => {
      sent.push(msg);
      buffered++;
      return buffered < room;
    },
    /** The client read everything buffered. */
    flush: () => {
      buffered = 0;
      const d = drain;
      drain = undefined;
      d?.();
    },
    get waitingForDrain() {
      return drain !== undefined;
    },
    cancel: () => {
      controller.abort(new Error('client went away'));
    },
  };
}

describe('getContainerEvents', () => {
  it('sends every event in order and leaves the bus when the client cancels', async () => {
    const bus = new ContainerEventBus(await podStore());
    const stream = fakeStream();
    const done = getContainerEvents(bus)({}, stream.send, stream.scope);
    assert.equal(bus.subscriberCount, 1, 'subscribed before the first await');
    const types: ContainerEventType[] = ['CREATED', 'STARTED', 'STOPPED', 'DELETED'];
    for (const t of types) bus.publish(app(t));
    await tick();
    assert.deepEqual(
      stream.sent.map((m) => m.container_event_type),
      types.map((t) => `CONTAINER_${t}_EVENT`),
    );
    const stamps = stream.sent.map((m) => BigInt(String(m.created_at)));
    for (let i = 1; i < stamps.length; i++) assert.ok((stamps[i] ?? 0n) > (stamps[i - 1] ?? 0n));
    stream.cancel();
    await assert.rejects(done, CanceledError);
    assert.equal(bus.subscriberCount, 0, 'no subscription leaks');
  });

  it('refuses a call whose client is already gone, without subscribing', async () => {
    const bus = new ContainerEventBus(await podStore());
    const stream = fakeStream();
    stream.cancel();
    await assert.rejects(getContainerEvents(bus)({}, stream.send, stream.scope), CanceledError);
    assert.equal(bus.subscriberCount, 0);
  });

  it('stops sending while the stream is full, queues meanwhile, and resumes in order', async () => {
    const bus = new ContainerEventBus(await podStore());
    const stream = fakeStream(2);
    const done = getContainerEvents(bus, { maxQueued: 10 })({}, stream.send, stream.scope);
    for (let n = 0; n < 7; n++) bus.publish(app('STARTED'));
    await tick();
    assert.equal(stream.sent.length, 2, 'no more sends until the buffer drains');
    assert.ok(stream.waitingForDrain);
    stream.flush();
    await tick();
    assert.equal(stream.sent.length, 4);
    for (let n = 0; n < 3; n++) {
      stream.flush();
      await tick();
    }
    assert.equal(stream.sent.length, 7);
    stream.cancel();
    await assert.rejects(done, CanceledError);
  });

  it('converts each event once however many clients send it', async () => {
    const bus = new ContainerEventBus(await podStore());
    const impl = getContainerEvents(bus);
    const a = fakeStream();
    const b = fakeStream();
    const doneA = impl({}, a.send, a.scope);
    const doneB = impl({}, b.send, b.scope);
    bus.publish(app('CREATED'));
    await tick();
    assert.equal(a.sent[0], b.sent[0]);
    a.cancel();
    b.cancel();
    await Promise.allSettled([doneA, doneB]);
  });

  it('cuts off a client that does not read, with RESOURCE_EXHAUSTED', async () => {
    const bus = new ContainerEventBus(await podStore());
    const stream = fakeStream(2);
    const done = assert.rejects(
      getContainerEvents(bus, { maxQueued: 5 })({}, stream.send, stream.scope),
      ResourceExhaustedError,
    );
    for (let n = 0; n < 20; n++) {
      bus.publish(app('STARTED'));
      await tick();
    }
    await done;
    assert.equal(stream.sent.length, 2, 'what was sent before the cut');
    assert.equal(bus.subscriberCount, 0);
  });
});

// --- through grpc-js, with real HTTP/2 flow control ------------------------------------------

describe('GetContainerEvents over gRPC', () => {
  let dir: string;
  let server: Server;
  let client: RuntimeServiceClient;
  let bus: ContainerEventBus;
  let ctx: CriContext;
  const MAX_QUEUED = 200;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crisp-events-'));
    bus = new ContainerEventBus(await podStore());
    // serverStream uses only the log, metrics and in-flight table of the context.
    ctx = {
      log: createLogger({ level: 'silent', format: 'json' }),
      metrics: createMetrics(),
      inflight: new InflightTracker(),
    } as CriContext;
    const proto = await loadCriProto();
    server = new Server();
    server.addService(proto.runtime.v1.RuntimeService.service, {
      GetContainerEvents: serverStream(
        ctx,
        'GetContainerEvents',
        getContainerEvents(bus, { maxQueued: MAX_QUEUED }),
      ),
    });
    const socket = join(dir, 'cri.sock');
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (err) => {
        if (err) reject(err);
        else resolve();
      });
    });
    client = new proto.runtime.v1.RuntimeService(`unix:${socket}`, credentials.createInsecure());
  });

  after(async () => {
    client.close();
    server.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  interface Reader {
    stream: ClientReadableStream<ContainerEventResponse__Output>;
    got: ContainerEventResponse__Output[];
    ended: Promise<ServiceError | 'end'>;
  }

  function open(): Reader {
    const stream = client.GetContainerEvents({});
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

  async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /**
   * Publishes `n` events in bursts of 10, letting I/O run between bursts, as transitions do; with
   * `pace`, no faster than that client reads (it stays within MAX_QUEUED / 2 of the stream).
   */
  async function churn(n: number, pace?: Reader): Promise<void> {
    for (let i = 0; i < n; i++) {
      bus.publish(app(i % 2 === 0 ? 'STARTED' : 'STOPPED'));
      if (i % 10 === 9) {
        await tick();
        if (pace) await until('the reader to keep up', () => pace.got.length > i - MAX_QUEUED / 2);
      }
    }
  }

  it('keeps a reading client whole and cuts off one that stopped reading, without a gap', async () => {
    const fast = open();
    const slow = open();
    await until('both subscribed', () => bus.subscriberCount === 2);
    slow.stream.pause();
    const total = 10 * MAX_QUEUED;
    await churn(total, fast);
    await until('the fast client to have everything', () => fast.got.length === total);
    assert.equal(bus.subscriberCount, 1, 'the slow client was cut off');

    // The slow client reads again: what it gets is complete and in order up to the cut, then the error.
    slow.stream.resume();
    const err = await slow.ended;
    assert.notEqual(err, 'end');
    assert.equal((err as ServiceError).code, GrpcCode.RESOURCE_EXHAUSTED);
    assert.match((err as ServiceError).details, /event client too slow/);
    assert.ok(slow.got.length > 0 && slow.got.length < total, `got ${slow.got.length} of ${total}`);
    assert.deepEqual(
      slow.got.map((m) => m.created_at),
      fast.got.slice(0, slow.got.length).map((m) => m.created_at),
      'the slow client saw a prefix of the stream: nothing skipped',
    );
    const stamps = fast.got.map((m) => BigInt(m.created_at));
    for (let i = 1; i < stamps.length; i++) assert.ok((stamps[i] ?? 0n) > (stamps[i - 1] ?? 0n));

    fast.stream.cancel();
    await fast.ended;
    await until('the fast client to leave the bus', () => bus.subscriberCount === 0);
    await until('no call in flight', () => ctx.inflight.size === 0);
  });

  it('leaves the bus when a client cancels or its connection closes', async () => {
    const readers = [open(), open(), open()];
    await until('three subscribed', () => bus.subscriberCount === 3);
    readers[0]?.stream.cancel();
    await until('one left', () => bus.subscriberCount === 2);
    readers[1]?.stream.pause();
    await churn(50);
    readers[1]?.stream.cancel();
    readers[2]?.stream.cancel();
    await until('all left', () => bus.subscriberCount === 0);
    for (const r of readers) {
      const end = await r.ended;
      assert.notEqual(end, 'end');
      assert.equal((end as ServiceError).code, GrpcCode.CANCELLED);
    }
    await until('no call in flight', () => ctx.inflight.size === 0);
  });

  it('ends streams with UNAVAILABLE when the bus closes (daemon shutdown)', async () => {
    const reader = open();
    await until('subscribed', () => bus.subscriberCount === 1);
    bus.publish(app('CREATED'));
    bus.close();
    const end = await reader.ended;
    assert.equal(reader.got.length, 1);
    assert.notEqual(end, 'end');
    assert.equal((end as ServiceError).code, GrpcCode.UNAVAILABLE);
    assert.match((end as ServiceError).details, /shutting down/);
  });
});
