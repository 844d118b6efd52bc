/**
 * make bench (pods): starts the real daemon on real runc + conmon (its own temp dirs and a real
 * docker-registry serving the project's busybox image, as the e2e tests do) and reports latency
 * percentiles of the pod and container lifecycle RPCs, of ListContainers / ListPodSandbox with
 * many pods, and the memory of the daemon, of conmon and of the pause (catatonit) processes.
 * Container event delivery (GetContainerEvents) under churn is bench/events.ts.
 * A report, not a test: nothing here fails on a time. Everything it makes is removed at the end,
 * also when a step fails.
 *
 * Sizes can be changed from the environment: BENCH_LIFECYCLE_PODS (20), BENCH_EXECS_PER_CONTAINER
 * (5), BENCH_SCALE_PODS (100), BENCH_EXTRA_CONTAINERS (4 created-only containers per pod in the
 * "5 per pod" step; 0 skips it), BENCH_LIST_CALLS (1000), BENCH_CONCURRENCY (4: pods set up and
 * torn down at a time in the scale steps), BENCH_BUDGET_S (200: the 5-per-pod step is skipped
 * when its estimate would take the run past this).
 */
import { BenchDaemon, Cleanup, Interrupts, processes, removeAllPods } from './bench-daemon.js';
import {
  benchClock,
  envInt,
  histogramRow,
  machineLine,
  memoryOf,
  mib,
  percentile,
  printLatencyTable,
  row,
  sum,
  type Row,
} from './measure.js';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

const LIFECYCLE_PODS = envInt('BENCH_LIFECYCLE_PODS', 20);
const EXECS_PER_CONTAINER = envInt('BENCH_EXECS_PER_CONTAINER', 5);
const SCALE_PODS = envInt('BENCH_SCALE_PODS', 100);
const EXTRA_CONTAINERS = envInt('BENCH_EXTRA_CONTAINERS', 4);
const LIST_CALLS = envInt('BENCH_LIST_CALLS', 1000);
const BUDGET_MS = envInt('BENCH_BUDGET_S', 200) * 1000;
/** Pods set up and torn down this many at a time in the scale steps (not measured per call). */
const SETUP_CONCURRENCY = Math.max(1, envInt('BENCH_CONCURRENCY', 4));
const CALL_TIMEOUT_MS = 120_000;

const ms = (x: number): string => x.toFixed(1);

/** Runs `fn` over `items`, `concurrency` at a time. */
async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

interface Pod {
  id: string;
  config: ReturnType<typeof podConfigFor>;
}

function podConfigFor(name: string, logDir: string) {
  return {
    metadata: { name, namespace: 'bench', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: join(logDir, name),
    labels: { app: name, bench: 'pods' },
    annotations: { 'bench/pod': name },
  };
}

async function main(): Promise<void> {
  const { elapsed, progress } = benchClock('pods');
  const rows: Row[] = [];
  /** Calls made SETUP_CONCURRENCY at a time while setting up and tearing down: not clean latencies. */
  const loadRows: Row[] = [];
  const notes: string[] = [];
  const createdIds = new Set<string>();
  const infraPids = new Set<number>();

  const daemon = new BenchDaemon();
  let failure: unknown;
  const interrupts = new Interrupts();

  try {
    const { dirs, crisp, cri: c, image, logDir } = await daemon.start('crisp-bench-pods-', CALL_TIMEOUT_MS);
    const daemonPid = crisp.pid;

    let podCount = 0;
    const runPod = async (prefix: string): Promise<{ pod: Pod; ms: number }> => {
      const config = podConfigFor(`${prefix}${++podCount}`, logDir);
      const t = performance.now();
      const { pod_sandbox_id } = await c.runtime.RunPodSandbox({ config }, CALL_TIMEOUT_MS);
      const took = performance.now() - t;
      createdIds.add(pod_sandbox_id);
      return { pod: { id: pod_sandbox_id, config }, ms: took };
    };
    const createContainer = async (
      pod: Pod,
      name: string,
      command: string[],
    ): Promise<{ id: string; ms: number }> => {
      const config = {
        metadata: { name, attempt: 0 },
        image: { image },
        command,
        log_path: `${name}.log`,
        labels: { ctr: name },
      };
      const t = performance.now();
      const { container_id } = await c.runtime.CreateContainer(
        { pod_sandbox_id: pod.id, config, sandbox_config: pod.config },
        CALL_TIMEOUT_MS,
      );
      const took = performance.now() - t;
      createdIds.add(container_id);
      return { id: container_id, ms: took };
    };
    const timed = async (fn: () => Promise<unknown>): Promise<number> => {
      const t = performance.now();
      await fn();
      return performance.now() - t;
    };
    const metricsUrl = crisp.metricsUrl;
    /**
     * The daemon's V8 heap from its /metrics (prom-client's default metrics): RSS alone cannot
     * tell garbage not yet collected from a leak.
     */
    const heapOf = async (): Promise<string> => {
      try {
        const text = await (await fetch(`${metricsUrl}/metrics`)).text();
        const value = (name: string): number =>
          Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
        return `; V8 heap used ${mib(value('nodejs_heap_size_used_bytes'))} of ${mib(value('nodejs_heap_size_total_bytes'))} MiB, external ${mib(value('nodejs_external_memory_bytes'))} MiB`;
      } catch {
        return '';
      }
    };
    const daemonMemory = async (label: string): Promise<void> => {
      const m = await memoryOf(daemonPid);
      notes.push(
        `daemon RSS ${label}: ${mib(m.rssMiB)} MiB (peak so far ${mib(m.peakMiB)} MiB)${await heapOf()}`,
      );
    };

    await daemonMemory('with 0 pods (image pulled)');
    progress('daemon ready, busybox pulled');

    // --- 1. The lifecycle, one call at a time, one pod with one container per round. ----------
    const lat = {
      run: [] as number[],
      create: [] as number[],
      start: [] as number[],
      exec: [] as number[],
      stopCtr: [] as number[],
      removeCtr: [] as number[],
      stopPod: [] as number[],
      removePod: [] as number[],
    };
    // One uncounted round first: the first pod pays for lazy one-time work.
    for (let round = 0; round <= LIFECYCLE_PODS; round++) {
      interrupts.check();
      const counted = round > 0;
      const { pod, ms: runMs } = await runPod('life');
      const { id, ms: createMs } = await createContainer(pod, 'app', ['sleep', '1000']);
      const startMs = await timed(() => c.runtime.StartContainer({ container_id: id }, CALL_TIMEOUT_MS));
      const execMs: number[] = [];
      for (let i = 0; i < EXECS_PER_CONTAINER; i++) {
        const t = performance.now();
        const res = await c.runtime.ExecSync({ container_id: id, cmd: ['true'], timeout: '10' }, 30_000);
        execMs.push(performance.now() - t);
        if (res.exit_code !== 0) throw new Error(`ExecSync true exited ${res.exit_code}`);
      }
      const stopCtrMs = await timed(() =>
        c.runtime.StopContainer({ container_id: id, timeout: '0' }, CALL_TIMEOUT_MS),
      );
      const removeCtrMs = await timed(() => c.runtime.RemoveContainer({ container_id: id }, CALL_TIMEOUT_MS));
      const stopPodMs = await timed(() =>
        c.runtime.StopPodSandbox({ pod_sandbox_id: pod.id }, CALL_TIMEOUT_MS),
      );
      const removePodMs = await timed(() =>
        c.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, CALL_TIMEOUT_MS),
      );
      if (!counted) {
        notes.push(
          `first (uncounted) round: RunPodSandbox ${ms(runMs)}, CreateContainer ${ms(createMs)}, StartContainer ${ms(startMs)} ms`,
        );
        continue;
      }
      lat.run.push(runMs);
      lat.create.push(createMs);
      lat.start.push(startMs);
      lat.exec.push(...execMs);
      lat.stopCtr.push(stopCtrMs);
      lat.removeCtr.push(removeCtrMs);
      lat.stopPod.push(stopPodMs);
      lat.removePod.push(removePodMs);
    }
    rows.push(
      row('RunPodSandbox', lat.run),
      row('CreateContainer', lat.create, 'busybox, sleep 1000'),
      row('StartContainer', lat.start),
      row('ExecSync true', lat.exec, `${EXECS_PER_CONTAINER} per container`),
      row('StopContainer timeout=0', lat.stopCtr, 'on sleep 1000'),
      row('RemoveContainer', lat.removeCtr),
      row('StopPodSandbox', lat.stopPod, 'no containers left'),
      row('RemovePodSandbox', lat.removePod),
    );
    // Where RunPodSandbox and StopPodSandbox spend their time, from the daemon's stage
    // histograms (every lifecycle round; bucket-interpolated, so approximate).
    const stagesText = await (await fetch(`${metricsUrl}/metrics`)).text();
    const stage = (label: string, st: string, kind: string, note = ''): Row | undefined =>
      histogramRow(stagesText, 'crisp_pod_start_stage_duration_seconds', { stage: st, kind }, label, note);
    for (const r of [
      stage('  RunPodSandbox: netns', 'netns', 'pod', 'from the daemon’s histogram'),
      stage('  RunPodSandbox: CNI ADD', 'cni', 'pod', 'bridge + host-local'),
      stage('  RunPodSandbox: pod files', 'pod_files', 'pod'),
      stage('  RunPodSandbox: infra rootfs', 'rootfs', 'infra'),
      stage('  RunPodSandbox: infra spec', 'spec', 'infra'),
      stage('  RunPodSandbox: infra create', 'runtime_create', 'infra', 'conmon + runc create'),
      stage('  RunPodSandbox: infra start', 'runtime_start', 'infra'),
      stage('  StopPodSandbox: containers', 'stop_containers', 'pod', 'none left here'),
      stage('  StopPodSandbox: infra', 'stop_infra', 'pod'),
      stage('  StopPodSandbox: CNI DEL', 'cni_del', 'pod'),
    ]) {
      if (r) rows.push(r);
    }
    await daemonMemory(`with 0 pods, after ${LIFECYCLE_PODS + 1} lifecycle rounds`);
    progress('lifecycle rounds done');

    // --- 2. Many pods: each with one running container. ------------------------------------
    const listRows = async (label: string, expectPods: number, expectContainers: number): Promise<void> => {
      const measureList = async (name: string, fn: () => Promise<number>, expect: number): Promise<void> => {
        for (let i = 0; i < 50; i++) await fn(); // warm-up
        const samples: number[] = [];
        for (let i = 0; i < LIST_CALLS; i++) {
          if (i % 100 === 0) interrupts.check();
          const t = performance.now();
          const n = await fn();
          samples.push(performance.now() - t);
          if (n !== expect) throw new Error(`${name} returned ${n} items, expected ${expect}`);
        }
        rows.push(row(`${name} (${label})`, samples, `${expect} items, sequential`));
      };
      await measureList(
        'ListContainers',
        async () => (await c.runtime.ListContainers({})).containers.length,
        expectContainers,
      );
      await measureList(
        'ListPodSandbox',
        async () => (await c.runtime.ListPodSandbox({})).items.length,
        expectPods,
      );
    };

    const scalePods: Pod[] = [];
    const load = { run: [] as number[], create: [] as number[], start: [] as number[] };
    const setupStarted = performance.now();
    await pool(
      Array.from({ length: SCALE_PODS }, (_, i) => i),
      SETUP_CONCURRENCY,
      async () => {
        interrupts.check();
        const { pod, ms: runMs } = await runPod('scale');
        scalePods.push(pod);
        const { id, ms: createMs } = await createContainer(pod, 'app', ['sleep', '1000']);
        load.start.push(await timed(() => c.runtime.StartContainer({ container_id: id }, CALL_TIMEOUT_MS)));
        load.run.push(runMs);
        load.create.push(createMs);
      },
    );
    const setupMs = performance.now() - setupStarted;
    loadRows.push(
      row('RunPodSandbox', load.run, `setup of the ${SCALE_PODS} pods`),
      row('CreateContainer', load.create),
      row('StartContainer', load.start),
    );
    notes.push(
      `setup of ${SCALE_PODS} pods x 1 running container, ${SETUP_CONCURRENCY} at a time: ${(setupMs / 1000).toFixed(1)} s (${ms(setupMs / Math.max(1, SCALE_PODS))} ms per pod, wall)`,
    );
    await daemonMemory(`with ${SCALE_PODS} running pods (1 container each)`);
    progress(`${SCALE_PODS} pods running`);

    // conmon: every conmon whose argv mentions this run's run dir; infra or app by its -c id.
    const infraIds = new Set<string>();
    const catatonitRss: number[] = [];
    for (const p of scalePods) {
      const res = await c.runtime.PodSandboxStatus({ pod_sandbox_id: p.id, verbose: true });
      const info = JSON.parse(res.info.info ?? '{}') as { infraContainer?: { id?: string; pid?: number } };
      if (info.infraContainer?.id !== undefined) infraIds.add(info.infraContainer.id);
      const pid = info.infraContainer?.pid;
      if (typeof pid === 'number' && pid > 0) {
        infraPids.add(pid);
        const argv0 = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0')[0] ?? '';
        if (!argv0.includes('catatonit')) notes.push(`pause pid ${pid} runs ${JSON.stringify(argv0)}?`);
        const m = await memoryOf(pid);
        if (!Number.isNaN(m.rssMiB)) catatonitRss.push(m.rssMiB);
      }
    }
    const conmons = (await processes()).filter(
      (p) => basename(p.argv[0] ?? '') === 'conmon' && p.argv.some((a) => a.includes(dirs.run)),
    );
    const conmonRss = { infra: [] as number[], app: [] as number[] };
    for (const p of conmons) {
      const id = p.argv[p.argv.indexOf('-c') + 1] ?? '';
      const m = await memoryOf(p.pid);
      if (Number.isNaN(m.rssMiB)) continue;
      (infraIds.has(id) ? conmonRss.infra : conmonRss.app).push(m.rssMiB);
    }
    const all = [...conmonRss.infra, ...conmonRss.app];
    notes.push(
      `conmon RSS per container: ${mib(sum(all) / Math.max(1, all.length))} MiB (${all.length} conmon processes, ${mib(sum(all))} MiB in all; infra ${conmonRss.infra.length} avg ${mib(sum(conmonRss.infra) / Math.max(1, conmonRss.infra.length))}, app ${conmonRss.app.length} avg ${mib(sum(conmonRss.app) / Math.max(1, conmonRss.app.length))})`,
    );
    notes.push(
      `pause (catatonit) RSS per pod: ${mib(sum(catatonitRss) / Math.max(1, catatonitRss.length))} MiB (${catatonitRss.length} processes, ${mib(sum(catatonitRss))} MiB in all)`,
    );

    await listRows(`${SCALE_PODS} pods, ${SCALE_PODS} ctrs`, SCALE_PODS, SCALE_PODS);
    {
      const samples: number[] = [];
      for (let i = 0; i < 200; i++) {
        const t = performance.now();
        const n = (await c.runtime.ListContainerStats({})).stats.length;
        samples.push(performance.now() - t);
        if (n !== SCALE_PODS)
          throw new Error(`ListContainerStats returned ${n} items, expected ${SCALE_PODS}`);
      }
      rows.push(
        row(`ListContainerStats (${SCALE_PODS} running)`, samples, `${SCALE_PODS} items, sequential`),
      );
    }

    // --- 3. Five containers per pod: the extra ones created, not started. --------------------
    let totalContainers = SCALE_PODS;
    if (EXTRA_CONTAINERS > 0 && SCALE_PODS > 0) {
      const creates = SCALE_PODS * EXTRA_CONTAINERS;
      const createP50 = percentile(
        [...lat.create].sort((a, b) => a - b),
        50,
      );
      // creates (at SETUP_CONCURRENCY on 2 cores: about sequential speed), the list rows again
      // (as long as the last ones), and a teardown that removes 5x the containers.
      const listMs = sum(rows.slice(-2).map((r) => r.p50 * (r.n + 50)));
      const estimateMs = creates * createP50 + listMs * 2 + creates * createP50;
      if (elapsed() + estimateMs > BUDGET_MS) {
        notes.push(
          `skipped ${creates} created containers: estimated ${(estimateMs / 1000).toFixed(0)} s would take the run past ${BUDGET_MS / 1000} s`,
        );
      } else {
        const extraStarted = performance.now();
        const work = scalePods.flatMap((pod) =>
          Array.from({ length: EXTRA_CONTAINERS }, (_, i) => ({ pod, name: `extra${i + 1}` })),
        );
        const extraCreates: number[] = [];
        await pool(work, SETUP_CONCURRENCY, async ({ pod, name }) => {
          interrupts.check();
          extraCreates.push((await createContainer(pod, name, ['sleep', '1000'])).ms);
        });
        loadRows.push(row('CreateContainer', extraCreates, 'not started, into pods that have 1-4'));
        totalContainers += creates;
        const extraMs = performance.now() - extraStarted;
        notes.push(
          `created (not started) ${creates} more containers, ${EXTRA_CONTAINERS} per pod, ${SETUP_CONCURRENCY} at a time: ${(extraMs / 1000).toFixed(1)} s; ${totalContainers} containers in all (${SCALE_PODS} running, ${creates} created)`,
        );
        await daemonMemory(`with ${SCALE_PODS} pods and ${totalContainers} containers`);
        progress(`${totalContainers} containers`);
        await listRows(`${SCALE_PODS} pods, ${totalContainers} ctrs`, SCALE_PODS, totalContainers);
      }
    }

    progress('list calls done; tearing down');
    // --- 4. Teardown through the CRI (timed as a whole; the cleanup below catches leftovers).
    const teardownStarted = performance.now();
    const teardown = { stop: [] as number[], remove: [] as number[] };
    await pool(scalePods, SETUP_CONCURRENCY, async (pod) => {
      teardown.stop.push(
        await timed(() => c.runtime.StopPodSandbox({ pod_sandbox_id: pod.id }, CALL_TIMEOUT_MS)),
      );
      teardown.remove.push(
        await timed(() => c.runtime.RemovePodSandbox({ pod_sandbox_id: pod.id }, CALL_TIMEOUT_MS)),
      );
    });
    const teardownMs = performance.now() - teardownStarted;
    const perPod = totalContainers / Math.max(1, SCALE_PODS);
    loadRows.push(
      row('StopPodSandbox', teardown.stop, `${perPod} container(s) per pod`),
      row('RemovePodSandbox', teardown.remove, `${perPod} container(s) per pod`),
    );
    notes.push(
      `teardown of ${SCALE_PODS} pods (${totalContainers} containers), StopPodSandbox + RemovePodSandbox, ${SETUP_CONCURRENCY} at a time: ${(teardownMs / 1000).toFixed(1)} s`,
    );
    await daemonMemory('with 0 pods again');
  } catch (err) {
    failure = err;
  } finally {
    progress('cleaning up');
    const cleanup = new Cleanup();
    const c = daemon.liveCri;
    if (c !== undefined) await cleanup.step('list pods', () => removeAllPods(c, cleanup, CALL_TIMEOUT_MS));
    await daemon.stop(cleanup, { createdIds, infraPids });
    interrupts.release();

    console.log(await machineLine('pods'));
    console.log('latency in ms, over the unix socket, one call at a time');
    const print = printLatencyTable(rows, 40);
    if (loadRows.length > 0) {
      console.log(`under load: ${SETUP_CONCURRENCY} pods set up / torn down at a time (not clean latencies)`);
      loadRows.forEach(print);
    }
    for (const n of notes) console.log(n);
    console.log(`total run time: ${(elapsed() / 1000).toFixed(1)} s`);
    cleanup.print(failure);
  }
}

await main();
