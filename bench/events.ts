/**
 * make bench (events): GetContainerEvents delivery while pods churn. Starts the real daemon on
 * real runc + conmon (its own temp dirs and a real docker-registry serving the project's busybox
 * image, as bench/pods.ts does), connects BENCH_EVENT_CLIENTS event streams, and runs
 * BENCH_EVENT_PODS workers that each loop through a whole pod lifecycle (RunPodSandbox,
 * CreateContainer, StartContainer, StopContainer, RemoveContainer, StopPodSandbox,
 * RemovePodSandbox) for BENCH_EVENT_SECONDS. It reports the events each client got per second,
 * whether every client got the very same stream (count, order and content), the delivery latency
 * (arrival minus the event's created_at) and the RPC operations per second that produced them:
 * the event rate here is bound by how fast the daemon churns pods, not by the stream.
 *
 * The event clients run in a worker thread, each on its own connection, so their arrival times
 * are not held up by the churn driver's callbacks. A report, not a test: nothing here fails on a
 * time. Every pod is removed at the end, also when a step fails.
 *
 * Sizes can be changed from the environment: BENCH_EVENT_PODS (50 concurrent churning pods),
 * BENCH_EVENT_SECONDS (30: no new pod cycle starts after this), BENCH_EVENT_CLIENTS (4),
 * BENCH_EVENT_CALL_TIMEOUT_S (60: the limit on each RPC).
 */
import { BenchDaemon, Cleanup, Interrupts, removeAllPods } from './bench-daemon.js';
import { benchClock, envInt, machineLine, memoryOf, message, mib, row, sum, type Row } from './measure.js';
import { credentials, status as GrpcCode, type ServiceError } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { loadCriProto } from '../src/cri/proto.js';
import type { ContainerEventResponse__Output } from '../src/generated/runtime/v1/ContainerEventResponse.js';
const PODS = Math.max(1, envInt('BENCH_EVENT_PODS', 50));
const SECONDS = envInt('BENCH_EVENT_SECONDS', 30);
const CLIENTS = Math.max(1, envInt('BENCH_EVENT_CLIENTS', 4));
const CALL_TIMEOUT_MS = Math.max(1, envInt('BENCH_EVENT_CALL_TIMEOUT_S', 60)) * 1000;
/** A churn worker gives up after this many failed cycles in a row (the daemon is in trouble). */
const MAX_FAILURES_IN_ROW = 3;
/** Events a full pod cycle makes: CREATED + STARTED for the pod (its infra container, reported
 * under the sandbox id), CREATED, STARTED, STOPPED, DELETED for the container, then STOPPED and
 * DELETED for the pod: 2 for RunPodSandbox, 1 for each other call. */
const EVENTS_PER_CALL: Readonly<Record<Op, number>> = {
  RunPodSandbox: 2,
  CreateContainer: 1,
  StartContainer: 1,
  StopContainer: 1,
  RemoveContainer: 1,
  StopPodSandbox: 1,
  RemovePodSandbox: 1,
};
type Op =
  | 'RunPodSandbox'
  | 'CreateContainer'
  | 'StartContainer'
  | 'StopContainer'
  | 'RemoveContainer'
  | 'StopPodSandbox'
  | 'RemovePodSandbox';
const OPS = Object.keys(EVENTS_PER_CALL) as Op[];

// --- The event clients' thread ---------------------------------------------------------------

interface ClientThreadData {
  socket: string;
  clients: number;
}

/** What one event client saw since the last reset. */
interface ClientStats {
  count: number;
  byType: Record<string, number>;
  /** sha256 over every event's created_at, type and id in arrival order: equal ⇔ same stream. */
  digest: string;
  /** Events whose created_at was not above the one before (the stream promises increasing). */
  outOfOrder: number;
  /** Arrival (wall clock, ms with µs resolution) minus created_at, in ms, per event. */
  latencies: number[];
  /** How the stream ended, if it did before the bench cancelled it. */
  error: string | undefined;
}

type ToClients = { type: 'counts' } | { type: 'reset' } | { type: 'finish' };
type FromClients =
  | { type: 'ready' }
  | { type: 'counts'; counts: number[]; errors: (string | undefined)[] }
  | { type: 'stats'; clients: ClientStats[]; loopDelayP99Ms: number; loopDelayMaxMs: number };

async function clientThread(data: ClientThreadData): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('clientThread runs in a worker');
  const post = (msg: FromClients): void => {
    port.postMessage(msg);
  };
  const proto = await loadCriProto();
  const { RuntimeService } = proto.runtime.v1;
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  /** performance.now() is monotonic and sub-ms; anchored to the wall clock, as created_at is. */
  const wallMs = (): number => performance.timeOrigin + performance.now();

  const fresh = (): Omit<ClientStats, 'digest' | 'error'> & { hash: ReturnType<typeof createHash> } => ({
    count: 0,
    byType: {},
    outOfOrder: 0,
    latencies: [],
    hash: createHash('sha256'),
  });
  const clients = Array.from({ length: data.clients }, () => {
    // Its own connection each (no shared subchannel), as separate consumers would have.
    const client = new RuntimeService(`unix:${data.socket}`, credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
    const state = { stats: fresh(), lastNs: -1n, error: undefined as string | undefined, cancelled: false };
    const call = client.GetContainerEvents({});
    call.on('data', (ev: ContainerEventResponse__Output) => {
      const arrived = wallMs();
      const ns = BigInt(ev.created_at);
      const s = state.stats;
      s.count += 1;
      s.byType[ev.container_event_type] = (s.byType[ev.container_event_type] ?? 0) + 1;
      if (ns <= state.lastNs) s.outOfOrder += 1;
      state.lastNs = ns;
      s.latencies.push(arrived - Number(ns / 1000n) / 1000);
      s.hash.update(`${ev.created_at} ${ev.container_event_type} ${ev.container_id}\n`);
    });
    call.on('error', (err: ServiceError) => {
      if (!(state.cancelled && err.code === GrpcCode.CANCELLED)) state.error = `${err.code} ${err.details}`;
    });
    return { client, call, state };
  });

  port.on('message', (msg: ToClients) => {
    switch (msg.type) {
      case 'counts':
        post({
          type: 'counts',
          counts: clients.map((c) => c.state.stats.count),
          errors: clients.map((c) => c.state.error),
        });
        return;
      case 'reset':
        for (const c of clients) c.state.stats = fresh();
        loopDelay.reset();
        loopDelay.enable();
        return;
      case 'finish': {
        loopDelay.disable();
        const stats = clients.map(({ state }): ClientStats => {
          const { hash, ...rest } = state.stats;
          return { ...rest, digest: hash.digest('hex'), error: state.error };
        });
        for (const c of clients) {
          c.state.cancelled = true;
          c.call.cancel();
          c.client.close();
        }
        post({
          type: 'stats',
          clients: stats,
          loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
          loopDelayMaxMs: loopDelay.max / 1e6,
        });
        port.close();
        return;
      }
    }
  });
  post({ type: 'ready' });
}

/** The main thread's handle on the client thread: one question at a time. */
function startClientThread(data: ClientThreadData): {
  ready: Promise<void>;
  ask: <T extends FromClients['type']>(
    msg: ToClients,
    reply: T,
  ) => Promise<Extract<FromClients, { type: T }>>;
  tell: (msg: ToClients) => void;
  terminate: () => Promise<number>;
} {
  const worker = new Worker(new URL(import.meta.url), { workerData: data });
  let waiting: { type: string; resolve: (m: FromClients) => void; reject: (e: Error) => void } | undefined;
  let failed: Error | undefined;
  let onReady: { resolve: () => void; reject: (e: Error) => void } | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = { resolve, reject };
  });
  const fail = (err: Error): void => {
    failed = err;
    onReady?.reject(err);
    waiting?.reject(err);
    waiting = undefined;
  };
  worker.on('message', (msg: FromClients) => {
    if (msg.type === 'ready') {
      onReady?.resolve();
      return;
    }
    if (waiting?.type === msg.type) {
      const w = waiting;
      waiting = undefined;
      w.resolve(msg);
    }
  });
  worker.on('error', fail);
  worker.on('exit', (code) => {
    fail(new Error(`the event client thread exited (code ${code})`));
  });
  return {
    ready,
    ask: (msg, reply) =>
      new Promise((resolve, reject) => {
        if (failed) {
          reject(failed);
          return;
        }
        waiting = {
          type: reply,
          resolve: (m) => {
            resolve(m as Extract<FromClients, { type: typeof reply }>);
          },
          reject,
        };
        worker.postMessage(msg);
      }),
    tell: (msg) => {
      worker.postMessage(msg);
    },
    terminate: () => worker.terminate(),
  };
}

// --- The churn and the report (main thread) --------------------------------------------------

const sleep = (msDelay: number): Promise<void> => new Promise((r) => setTimeout(r, msDelay));

async function main(): Promise<void> {
  const { elapsed, progress } = benchClock('events');
  const notes: string[] = [];
  const createdIds = new Set<string>();
  const latency = Object.fromEntries(OPS.map((op) => [op, [] as number[]])) as Record<Op, number[]>;
  const failures = Object.fromEntries(OPS.map((op) => [op, 0])) as Record<Op, number>;
  const failureSamples: string[] = [];
  let cycles = 0;
  let churnMs = Number.NaN;
  let stats: Extract<FromClients, { type: 'stats' }> | undefined;
  let warmupCounts: number[] = [];
  /** Events the successful calls made (undefined when some call failed: then it is not exact). */
  let expectedEvents: number | undefined;
  let memBefore: { rssMiB: number; peakMiB: number } | undefined;
  let memAfter: { rssMiB: number; peakMiB: number } | undefined;

  const daemon = new BenchDaemon();
  let clientThreadHandle: ReturnType<typeof startClientThread> | undefined;
  let failure: unknown;
  const interrupts = new Interrupts();

  try {
    const { dirs, crisp, cri: c, image, logDir } = await daemon.start('crisp-bench-events-', CALL_TIMEOUT_MS);
    const daemonPid = crisp.pid;
    progress('daemon ready, busybox pulled');

    /** One RPC, bounded by CALL_TIMEOUT_MS; its latency counted when `counted` and it succeeds. */
    const call = async <T>(op: Op, counted: boolean, fn: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      try {
        const res = await fn();
        if (counted) latency[op].push(performance.now() - t);
        return res;
      } catch (err) {
        if (counted) {
          failures[op] += 1;
          if (failureSamples.length < 5) failureSamples.push(`${op}: ${message(err)}`);
        }
        throw err;
      }
    };
    /** A whole pod cycle; on failure, the pod (and with it its container) is removed. */
    const podCycle = async (name: string, counted: boolean): Promise<void> => {
      const config = {
        metadata: { name, namespace: 'bench-events', uid: `uid-${name}`, attempt: 0 },
        hostname: name,
        log_directory: join(logDir, name),
        labels: { app: name, bench: 'events' },
      };
      let podId: string | undefined;
      try {
        podId = (
          await call('RunPodSandbox', counted, () => c.runtime.RunPodSandbox({ config }, CALL_TIMEOUT_MS))
        ).pod_sandbox_id;
        createdIds.add(podId);
        const pod_sandbox_id = podId;
        const { container_id } = await call('CreateContainer', counted, () =>
          c.runtime.CreateContainer(
            {
              pod_sandbox_id,
              config: {
                metadata: { name: 'app', attempt: 0 },
                image: { image },
                command: ['sleep', '1000'],
                log_path: 'app.log',
              },
              sandbox_config: config,
            },
            CALL_TIMEOUT_MS,
          ),
        );
        createdIds.add(container_id);
        await call('StartContainer', counted, () =>
          c.runtime.StartContainer({ container_id }, CALL_TIMEOUT_MS),
        );
        await call('StopContainer', counted, () =>
          c.runtime.StopContainer({ container_id, timeout: '0' }, CALL_TIMEOUT_MS),
        );
        await call('RemoveContainer', counted, () =>
          c.runtime.RemoveContainer({ container_id }, CALL_TIMEOUT_MS),
        );
        await call('StopPodSandbox', counted, () =>
          c.runtime.StopPodSandbox({ pod_sandbox_id }, CALL_TIMEOUT_MS),
        );
        await call('RemovePodSandbox', counted, () =>
          c.runtime.RemovePodSandbox({ pod_sandbox_id }, CALL_TIMEOUT_MS),
        );
        podId = undefined;
      } finally {
        if (podId !== undefined) {
          const id = podId;
          await c.runtime.StopPodSandbox({ pod_sandbox_id: id }, CALL_TIMEOUT_MS).catch(() => undefined);
          await c.runtime.RemovePodSandbox({ pod_sandbox_id: id }, CALL_TIMEOUT_MS).catch(() => undefined);
        }
      }
    };

    // --- 1. Connect the event clients; an uncounted pod cycle shows they are subscribed. -----
    clientThreadHandle = startClientThread({ socket: dirs.socket, clients: CLIENTS });
    const ct = clientThreadHandle;
    await ct.ready;
    /** Waits until no client's count has moved for `quietMs` (and, if given, all reach `atLeast`). */
    const settle = async (
      quietMs: number,
      timeoutMs: number,
      atLeast: number,
      strict: boolean,
    ): Promise<number[]> => {
      const deadline = performance.now() + timeoutMs;
      let last = (await ct.ask({ type: 'counts' }, 'counts')).counts;
      let stableSince = performance.now();
      for (;;) {
        await sleep(100);
        const now = await ct.ask({ type: 'counts' }, 'counts');
        const broken = now.errors.find((e) => e !== undefined);
        // During the warm-up a stream that ended is a setup failure; later it is reported.
        if (strict && broken !== undefined) throw new Error(`an event stream ended: ${broken}`);
        if (now.counts.some((n, i) => n !== last[i])) stableSince = performance.now();
        last = now.counts;
        const reached = last.every((n) => n >= atLeast);
        if (reached && performance.now() - stableSince >= quietMs) return last;
        if (performance.now() > deadline) return last;
      }
    };
    // A stream has no message until the first event: churn one pod until every client has one.
    for (let attempt = 1; ; attempt++) {
      await podCycle(`warmup${attempt}`, false);
      warmupCounts = await settle(500, 10_000, 0, true);
      if (warmupCounts.every((n) => n > 0)) break;
      if (attempt >= 5) throw new Error(`event clients got no events: ${warmupCounts.join(', ')}`);
    }
    ct.tell({ type: 'reset' });
    memBefore = await memoryOf(daemonPid);
    progress(`${CLIENTS} event clients subscribed; churning ${PODS} pods for ${SECONDS} s`);

    // --- 2. The churn: PODS workers, each a pod at a time, until the time is up. ------------
    const churnStarted = performance.now();
    const deadline = churnStarted + SECONDS * 1000;
    let done = 0;
    const ticker = setInterval(() => {
      progress(`${cycles} pod cycles, ${done}/${PODS} workers done`);
    }, 5000);
    try {
      await Promise.all(
        Array.from({ length: PODS }, async (_, w) => {
          let failedInRow = 0;
          for (let i = 0; !interrupts.interrupted && performance.now() < deadline; i++) {
            try {
              await podCycle(`ev${w}-${i}`, true);
              cycles += 1;
              failedInRow = 0;
            } catch {
              if (++failedInRow >= MAX_FAILURES_IN_ROW) break;
            }
          }
          done += 1;
        }),
      );
    } finally {
      clearInterval(ticker);
    }
    churnMs = performance.now() - churnStarted;
    progress(`churn done: ${cycles} pod cycles in ${(churnMs / 1000).toFixed(1)} s; draining the streams`);

    // --- 3. Let the streams drain, then collect what every client saw. -----------------------
    const failed = sum(OPS.map((op) => failures[op]));
    expectedEvents =
      failed === 0 ? sum(OPS.map((op) => latency[op].length * EVENTS_PER_CALL[op])) : undefined;
    await settle(1000, 30_000, expectedEvents ?? 0, false);
    memAfter = await memoryOf(daemonPid);
    stats = await ct.ask({ type: 'finish' }, 'stats');
    await ct.terminate();
    clientThreadHandle = undefined;
    if (failed > 0) {
      notes.push(
        `${failed} calls failed, so no exact event count is expected; e.g. ${failureSamples.join('; ')}`,
      );
    }
  } catch (err) {
    failure = err;
  } finally {
    progress('cleaning up');
    const cleanup = new Cleanup();
    if (clientThreadHandle !== undefined) {
      const h = clientThreadHandle;
      await cleanup.step('stop event clients', () => h.terminate());
    }
    const c = daemon.liveCri;
    if (c !== undefined) {
      // Whatever a failed or timed-out cycle left behind.
      await cleanup.step('remove leftover pods', async () => {
        const removed = await removeAllPods(c, cleanup, CALL_TIMEOUT_MS);
        if (removed > 0) notes.push(`${removed} pods were left at the end; removed`);
        const left = (await c.runtime.ListPodSandbox({})).items.length;
        const ctrs = (await c.runtime.ListContainers({})).containers.length;
        if (left + ctrs > 0) cleanup.errors.push(`${left} pods and ${ctrs} containers still listed`);
      });
    }
    await daemon.stop(cleanup, { createdIds });
    interrupts.release();

    await report({
      cycles,
      churnMs,
      latency,
      failures,
      stats,
      warmupCounts,
      expectedEvents,
      memBefore,
      memAfter,
      notes,
      totalMs: elapsed(),
    });
    cleanup.print(failure);
  }
}

async function report(r: {
  cycles: number;
  churnMs: number;
  latency: Record<Op, number[]>;
  failures: Record<Op, number>;
  stats: Extract<FromClients, { type: 'stats' }> | undefined;
  warmupCounts: number[];
  expectedEvents: number | undefined;
  memBefore: { rssMiB: number; peakMiB: number } | undefined;
  memAfter: { rssMiB: number; peakMiB: number } | undefined;
  notes: string[];
  totalMs: number;
}): Promise<void> {
  console.log(await machineLine('events'));
  const secs = r.churnMs / 1000;
  const perS = (n: number): string => (n / secs).toFixed(1);
  const f = (x: number): string => x.toFixed(2).padStart(10);
  const print = (x: Row, extra = ''): void => {
    console.log(
      `${x.name.padEnd(24)}${String(x.n).padStart(7)}${extra}${f(x.p50)}${f(x.p95)}${f(x.p99)}${f(x.max)}  ${x.note}`,
    );
  };
  const okCalls = sum(OPS.map((op) => r.latency[op].length));
  const failedCalls = sum(OPS.map((op) => r.failures[op]));
  console.log(
    `${PODS} pods churning concurrently for ${secs.toFixed(1)} s (no new cycle after ${SECONDS} s), ${CLIENTS} GetContainerEvents clients`,
  );
  console.log(
    `RPC latency in ms under that load (each worker: run pod, create, start, stop, remove container, stop, remove pod)`,
  );
  console.log(
    `${'operation'.padEnd(24)}${'n'.padStart(7)}${'p50'.padStart(10)}${'p95'.padStart(10)}${'p99'.padStart(10)}${'max'.padStart(10)}  note`,
  );
  for (const op of OPS) {
    const fails = r.failures[op];
    print(row(op, r.latency[op], fails > 0 ? `${fails} failed` : ''));
  }
  console.log(
    `RPC operations: ${okCalls} ok${failedCalls > 0 ? `, ${failedCalls} failed` : ''} = ${perS(okCalls)} ops/s; ${r.cycles} pod cycles = ${perS(r.cycles)} pods/s`,
  );

  const s = r.stats;
  if (s !== undefined && s.clients.length > 0) {
    const total = sum(s.clients.map((x) => x.count));
    const reference = s.clients[0];
    console.log(
      'events delivered per client; latency in ms = arrival minus created_at (the daemon stamps it when it publishes)',
    );
    console.log(
      `${'client'.padEnd(24)}${'events'.padStart(7)}${'events/s'.padStart(10)}${'p50'.padStart(10)}${'p95'.padStart(10)}${'p99'.padStart(10)}${'max'.padStart(10)}  note`,
    );
    s.clients.forEach((x, i) => {
      const same = x.count === reference?.count && x.digest === reference.digest;
      const note = [
        i === 0 ? 'reference stream' : same ? 'same stream as client 1' : 'DIFFERS from client 1',
        x.outOfOrder > 0 ? `${x.outOfOrder} out of order` : '',
        x.error !== undefined ? `ended: ${x.error}` : '',
      ]
        .filter((n) => n !== '')
        .join(', ');
      print(row(`client ${i + 1}`, x.latencies, note), perS(x.count).padStart(10));
    });
    print(
      row(
        'all clients',
        s.clients.flatMap((x) => x.latencies),
        `${total} events delivered in all`,
      ),
      perS(total).padStart(10),
    );
    const identical = s.clients.every((x) => x.count === reference?.count && x.digest === reference.digest);
    const byType = Object.entries(reference?.byType ?? {})
      .map(([t, n]) => `${t.replace(/^CONTAINER_|_EVENT$/g, '')} ${n}`)
      .join(', ');
    console.log(
      `every client got the same stream (count, order, ids, types, created_at): ${identical ? 'yes' : 'NO'}; per client: ${byType}`,
    );
    if (r.expectedEvents !== undefined) {
      const all = s.clients.every((x) => x.count === r.expectedEvents);
      console.log(
        `every client got all ${r.expectedEvents} events the successful calls made (${sum(Object.values(EVENTS_PER_CALL))} per pod cycle), none dropped: ${all ? 'yes' : 'NO'}`,
      );
    }
    console.log(
      `events/s delivered per client ${perS(reference?.count ?? 0)} vs RPC ops/s ${perS(okCalls)} (${((reference?.count ?? 0) / Math.max(1, okCalls)).toFixed(2)} events per call): the event rate is bound by the churn, not the stream`,
    );
    console.log(
      `client thread event-loop delay during the churn: p99 ${s.loopDelayP99Ms.toFixed(1)} ms, max ${s.loopDelayMaxMs.toFixed(1)} ms (adds to the latencies above)`,
    );
  } else {
    console.log('no event figures (the run failed before the streams were collected)');
  }
  if (r.warmupCounts.length > 0) {
    console.log(`warm-up pod cycle (uncounted): events per client ${r.warmupCounts.join(', ')}`);
  }
  for (const n of r.notes) console.log(n);
  const mem = (m: { rssMiB: number; peakMiB: number } | undefined): string =>
    m === undefined ? '?' : `${mib(m.rssMiB)} MiB (peak so far ${mib(m.peakMiB)} MiB)`;
  console.log(`daemon RSS before the churn: ${mem(r.memBefore)}; after: ${mem(r.memAfter)}`);
  console.log(
    'created_at has 1 ms resolution (the daemon stamps Date.now()), so each latency may read up to 1 ms high',
  );
  console.log(`total run time: ${(r.totalMs / 1000).toFixed(1)} s`);
}

if (isMainThread) await main();
else await clientThread(workerData as ClientThreadData);
