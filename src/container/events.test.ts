import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResourceExhaustedError, UnavailableError } from '../errors.js';
import { StoreBatch } from '../store/batch.js';
import { FakeStateStore } from '../store/fake-state-store.js';
import { T0, containerConfig, sandboxConfig, testId } from '../store/fixtures.js';
import type { ContainerState } from './state.js';
import {
  ContainerEventBus,
  DEFAULT_MAX_QUEUED,
  transitionEvents,
  type ContainerEvent,
  type ContainerEventType,
  type EventSubscription,
} from './events.js';

const POD = testId('pod');
const APP = testId('app');
const INFRA = testId('infra');

async function podStore(): Promise<FakeStateStore> {
  const store = new FakeStateStore();
  await store.commit(
    new StoreBatch()
      .putSandboxConfig(sandboxConfig(POD))
      .putSandboxState(POD, { state: 'ready', updatedAt: T0 })
      .putContainerConfig({ ...containerConfig(INFRA, POD, 'POD'), kind: 'infra' })
      .putContainerState(INFRA, { state: 'running', updatedAt: T0 })
      .putContainerConfig(containerConfig(APP, POD))
      .putContainerState(APP, { state: 'created', updatedAt: T0 }),
  );
  return store;
}

const change = (type: ContainerEventType, containerId = APP) => ({
  type,
  containerId,
  sandboxId: POD,
  kind: 'app' as const,
});

/** Takes `n` events that are already queued. */
async function take(sub: EventSubscription, n: number): Promise<ContainerEvent[]> {
  const out: ContainerEvent[] = [];
  for (let i = 0; i < n; i++) {
    const e = await sub.next();
    assert.ok(e, `event ${i + 1} of ${n}`);
    out.push(e);
  }
  return out;
}

describe('transitionEvents', () => {
  const cases: [ContainerState, ContainerState, ContainerEventType[]][] = [
    ['configured', 'created', ['CREATED']],
    ['created', 'running', ['STARTED']],
    ['running', 'paused', []],
    ['paused', 'running', []],
    ['running', 'stopped', ['STOPPED']],
    ['created', 'stopped', ['STOPPED']],
    ['stopped', 'exited', []],
    ['exited', 'exited', []],
    ['configured', 'exited', ['CREATED', 'STOPPED']],
    ['created', 'exited', ['STOPPED']],
    ['exited', 'created', ['CREATED']],
    ['running', 'removing', []],
    ['exited', 'removing', []],
    ['running', 'unknown', []],
  ];
  for (const [from, to, expected] of cases) {
    it(`${from} → ${to}: ${expected.join(', ') || 'nothing'}`, () => {
      assert.deepEqual(transitionEvents(from, to), expected);
    });
  }
});

describe('ContainerEventBus', () => {
  it('delivers every event in publish order with consecutive seq, to every subscriber', async () => {
    const bus = new ContainerEventBus(await podStore());
    const a = bus.subscribe();
    const b = bus.subscribe();
    const types: ContainerEventType[] = ['CREATED', 'STARTED', 'STOPPED', 'DELETED'];
    for (const t of types) bus.publish(change(t));
    for (const sub of [a, b]) {
      const got = await take(sub, 4);
      assert.deepEqual(
        got.map((e) => e.type),
        types,
      );
      assert.deepEqual(
        got.map((e) => e.seq),
        [1, 2, 3, 4],
      );
      assert.equal(sub.queued, 0);
    }
    // The same objects go to every subscriber (converted once by the CRI layer).
    bus.publish(change('CREATED'));
    assert.equal(await a.next(), await b.next());
  });

  it('wakes a subscriber that is already waiting', async () => {
    const bus = new ContainerEventBus(await podStore());
    const sub = bus.subscribe();
    const pending = sub.next();
    bus.publish(change('STARTED'));
    assert.equal((await pending)?.type, 'STARTED');
  });

  it('stamps strictly increasing wall-clock ns even when the clock stands still or steps back', async () => {
    const readings = [5_000n, 5_000n, 5_000n, 4_000n, 7_000n, 7_000n];
    let i = 0;
    const bus = new ContainerEventBus(await podStore(), { now: () => readings[i++] ?? 0n });
    const sub = bus.subscribe();
    for (let n = 0; n < readings.length; n++) bus.publish(change('STARTED'));
    const stamps = (await take(sub, readings.length)).map((e) => e.timestampNs);
    assert.deepEqual(stamps, [5_000n, 5_001n, 5_002n, 5_003n, 7_000n, 7_001n]);
  });

  it('stamps from the real clock by default: nanoseconds since the epoch', async () => {
    const bus = new ContainerEventBus(await podStore());
    const sub = bus.subscribe();
    const before = BigInt(Date.now()) * 1_000_000n;
    for (let n = 0; n < 1000; n++) bus.publish(change('STARTED'));
    const stamps = (await take(sub, 1000)).map((e) => e.timestampNs);
    const after = BigInt(Date.now()) * 1_000_000n + 1000n;
    for (let n = 1; n < stamps.length; n++) assert.ok((stamps[n] ?? 0n) > (stamps[n - 1] ?? 0n));
    assert.ok((stamps[0] ?? 0n) >= before && (stamps.at(-1) ?? 0n) <= after);
  });

  it('carries a snapshot of the pod taken at publish time, not at delivery', async () => {
    const store = await podStore();
    const bus = new ContainerEventBus(store);
    const sub = bus.subscribe();
    bus.publish(change('CREATED'));
    await store.commit(new StoreBatch().putContainerState(APP, { state: 'running', updatedAt: T0 }));
    bus.publish(change('STARTED'));
    await store.commit(new StoreBatch().delContainer(APP));
    bus.publish(change('DELETED'));
    await store.commit(new StoreBatch().delContainer(INFRA).delSandbox(POD));
    bus.publish({ ...change('DELETED', INFRA), kind: 'infra' });

    const [created, started, deleted, podGone] = await take(sub, 4);
    const stateOf = (e: ContainerEvent | undefined, id: string) =>
      e?.containers.find((c) => c.config.id === id)?.state.state;
    assert.equal(stateOf(created, APP), 'created');
    assert.equal(stateOf(started, APP), 'running');
    assert.equal(stateOf(started, INFRA), 'running', 'the infra container is in the snapshot too');
    assert.equal(stateOf(deleted, APP), undefined, 'a deleted container is absent');
    assert.equal(deleted?.sandbox?.config.id, POD);
    assert.equal(podGone?.sandbox, undefined);
    assert.deepEqual(podGone?.containers, []);
  });

  it('only includes containers of the event’s pod', async () => {
    const store = await podStore();
    const other = testId('other-pod');
    await store.commit(
      new StoreBatch()
        .putSandboxConfig(sandboxConfig(other, 'other'))
        .putSandboxState(other, { state: 'ready', updatedAt: T0 })
        .putContainerConfig(containerConfig(testId('other-app'), other))
        .putContainerState(testId('other-app'), { state: 'running', updatedAt: T0 }),
    );
    const bus = new ContainerEventBus(store);
    const sub = bus.subscribe();
    bus.publish(change('STARTED'));
    const e = await sub.next();
    assert.deepEqual(e?.containers.map((c) => c.config.id).sort(), [APP, INFRA].sort());
  });

  it('publishes transitions and deletions as CRI sees them', async () => {
    const store = await podStore();
    const bus = new ContainerEventBus(store);
    const sub = bus.subscribe();
    const cfg = { id: APP, sandboxId: POD, kind: 'app' as const };
    bus.transitioned(cfg, 'configured', 'created');
    bus.transitioned(cfg, 'created', 'running');
    bus.transitioned(cfg, 'running', 'paused');
    bus.transitioned(cfg, 'paused', 'running');
    bus.transitioned(cfg, 'running', 'stopped');
    bus.transitioned(cfg, 'stopped', 'exited');
    bus.transitioned(cfg, 'exited', 'removing');
    const record = store.getContainer(APP);
    assert.ok(record);
    bus.deleted(record);
    // A container that failed during create (still 'configured') was never announced.
    bus.deleted({ ...record, state: { ...record.state, state: 'configured' } });
    const got = await take(sub, 4);
    assert.deepEqual(
      got.map((e) => e.type),
      ['CREATED', 'STARTED', 'STOPPED', 'DELETED'],
    );
    assert.equal(sub.queued, 0);
  });

  it('does no work for events nobody listens to', async () => {
    let reads = 0;
    const store = await podStore();
    const bus = new ContainerEventBus({
      getSandbox: (id) => {
        reads++;
        return store.getSandbox(id);
      },
      listContainers: () => {
        reads++;
        return store.listContainers();
      },
    });
    for (let n = 0; n < 100; n++) bus.publish(change('STARTED'));
    assert.equal(reads, 0);
    const sub = bus.subscribe();
    bus.publish(change('STOPPED'));
    assert.equal((await sub.next())?.seq, 101, 'seq counts every event');
  });

  it('cuts off a subscriber that falls behind, with RESOURCE_EXHAUSTED, and keeps serving others', async () => {
    const bus = new ContainerEventBus(await podStore());
    const slow = bus.subscribe({ maxQueued: 3 });
    const fast = bus.subscribe({ maxQueued: 3 });
    for (let n = 0; n < 10; n++) {
      bus.publish(change('STARTED'));
      assert.equal((await fast.next())?.seq, n + 1);
    }
    assert.equal(bus.subscriberCount, 1, 'the slow one left the bus');
    assert.equal(slow.queued, 0, 'its queue was dropped');
    assert.ok(slow.signal.aborted, 'its signal tells a sender waiting on the client to stop');
    assert.ok(!fast.signal.aborted);
    await assert.rejects(slow.next(), (err: unknown) => {
      assert.ok(err instanceof ResourceExhaustedError);
      assert.match(err.message, /too slow.*reconnect and relist/);
      return true;
    });
    await assert.rejects(slow.next(), ResourceExhaustedError, 'and stays cut off');
  });

  it('keeps a subscriber that stays just within its limit', async () => {
    const bus = new ContainerEventBus(await podStore());
    const sub = bus.subscribe({ maxQueued: 3 });
    for (let round = 0; round < 5; round++) {
      for (let n = 0; n < 3; n++) bus.publish(change('STARTED'));
      assert.equal(sub.queued, 3);
      assert.equal((await take(sub, 3)).length, 3);
    }
    assert.equal(bus.subscriberCount, 1);
  });

  it('defaults to a 10,000-event limit and refuses a nonsense one', async () => {
    assert.equal(DEFAULT_MAX_QUEUED, 10_000);
    const bus = new ContainerEventBus(await podStore());
    const sub = bus.subscribe();
    for (let n = 0; n < DEFAULT_MAX_QUEUED; n++) bus.publish(change('STARTED'));
    assert.equal(sub.queued, DEFAULT_MAX_QUEUED);
    bus.publish(change('STARTED'));
    await assert.rejects(sub.next(), ResourceExhaustedError);
    assert.throws(() => bus.subscribe({ maxQueued: 0 }), /maxQueued/);
  });

  it('drains a long queue in order (the consumed prefix is compacted)', async () => {
    const bus = new ContainerEventBus(await podStore());
    const sub = bus.subscribe({ maxQueued: 5000 });
    let expected = 1;
    for (let round = 0; round < 4; round++) {
      for (let n = 0; n < 3000; n++) bus.publish(change('STARTED'));
      for (const e of await take(sub, 2500)) assert.equal(e.seq, expected++);
    }
    for (const e of await take(sub, sub.queued)) assert.equal(e.seq, expected++);
    assert.equal(expected, 12_001);
  });

  it('unsubscribes on close: a waiting next() resolves undefined, nothing leaks', async () => {
    const bus = new ContainerEventBus(await podStore());
    const sub = bus.subscribe();
    const pending = sub.next();
    sub.close();
    assert.equal(await pending, undefined);
    assert.equal(bus.subscriberCount, 0);
    assert.ok(sub.signal.aborted);
    bus.publish(change('STARTED'));
    assert.equal(await sub.next(), undefined);
    sub.close();
  });

  it('ends every subscription with UNAVAILABLE when closed, and refuses new ones', async () => {
    const bus = new ContainerEventBus(await podStore());
    const waiting = bus.subscribe();
    const pending = waiting.next();
    const idle = bus.subscribe();
    bus.close();
    await assert.rejects(pending, UnavailableError);
    await assert.rejects(idle.next(), /shutting down/);
    await assert.rejects(bus.subscribe().next(), UnavailableError);
    assert.equal(bus.subscriberCount, 0);
  });

  it('refuses concurrent next() calls on one subscription', async () => {
    const bus = new ContainerEventBus(await podStore());
    const sub = bus.subscribe();
    const first = sub.next();
    await assert.rejects(sub.next(), /concurrently/);
    bus.publish(change('CREATED'));
    assert.equal((await first)?.type, 'CREATED');
  });
});
