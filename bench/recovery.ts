/**
 * make bench (recovery): how long crisp takes to start again after a crash with many pods. It
 * runs BENCH_RECOVERY_PODS (100) pods with one running container each on the real daemon, then
 * BENCH_RECOVERY_ROUNDS (3) times SIGKILLs it and starts it again, measuring: spawn → ready
 * (serving), the first ListPodSandbox and ListContainers answers after ready, the recovery's own
 * duration (every container checked against runc and conmon, every pod against its netns), and
 * the daemon's memory after it. A report, not a test; everything is removed at the end.
 */
import { BenchDaemon, Cleanup, Interrupts, removeAllPods } from './bench-daemon.js';
import {
  benchClock,
  envInt,
  machineLine,
  memoryOf,
  mib,
  printLatencyTable,
  row,
  type Row,
} from './measure.js';
import { join } from 'node:path';
import { createAndStart, type CriClients } from '../test/e2e/harness/cri-client.js';

const PODS = envInt('BENCH_RECOVERY_PODS', 100);
const ROUNDS = Math.max(1, envInt('BENCH_RECOVERY_ROUNDS', 3));
const CONCURRENCY = Math.max(1, envInt('BENCH_CONCURRENCY', 4));
const CALL_TIMEOUT_MS = 120_000;

async function main(): Promise<void> {
  const interrupts = new Interrupts();
  const daemon = new BenchDaemon();
  const { elapsed, progress } = benchClock('recovery');
  const cleanup = new Cleanup();
  const createdIds = new Set<string>();
  let failure: unknown;
  let c: CriClients | undefined;
  try {
    const started = await daemon.start('crisp-bench-recovery-', CALL_TIMEOUT_MS);
    c = started.cri;
    const cri = c;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < PODS) {
        interrupts.check();
        const name = `r${++next}`;
        const config = {
          metadata: { name, namespace: 'bench', uid: `uid-${name}`, attempt: 0 },
          hostname: name,
          log_directory: join(started.logDir, name),
        };
        const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, CALL_TIMEOUT_MS);
        createdIds.add(pod_sandbox_id);
        const id = await createAndStart(
          cri,
          { id: pod_sandbox_id, config },
          {
            metadata: { name: 'app' },
            image: { image: started.image },
            command: ['sleep', '100000'],
            log_path: 'app.log',
          },
        );
        createdIds.add(id);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    progress(`${PODS} pods with one container each running (${elapsed()})`);

    const ready: number[] = [];
    const firstListPods: number[] = [];
    const firstListContainers: number[] = [];
    const recovery: number[] = [];
    const notes: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      interrupts.check();
      const restarted = await daemon.killAndRestart();
      c = restarted.cri;
      ready.push(restarted.spawnToReadyMs);
      let t = performance.now();
      const pods = (await restarted.cri.runtime.ListPodSandbox({}, CALL_TIMEOUT_MS)).items.length;
      firstListPods.push(performance.now() - t);
      t = performance.now();
      const ctrs = (await restarted.cri.runtime.ListContainers({}, CALL_TIMEOUT_MS)).containers.length;
      firstListContainers.push(performance.now() - t);
      const done = await restarted.crisp.recovered(300_000);
      recovery.push(Number(done.durationMs));
      const mem = await memoryOf(restarted.crisp.pid);
      notes.push(
        `round ${round + 1}: ${pods} pods and ${ctrs} containers listed right after ready; recovery ${JSON.stringify(done.containers)} / pods ${JSON.stringify(done.pods)}; daemon RSS ${mib(mem.rssMiB)} MiB after it`,
      );
      progress(`restart ${round + 1} of ${ROUNDS} done (${elapsed()})`);
    }
    const rows: Row[] = [
      row('spawn → ready (serving)', ready),
      row('first ListPodSandbox after ready', firstListPods),
      row('first ListContainers after ready', firstListContainers),
      row(`recovery of ${PODS} pods + ${PODS * 2} containers`, recovery),
    ];
    console.log(await machineLine('recovery'));
    console.log(
      `recovery after SIGKILL with ${PODS} pods, one running container each (${ROUNDS} restarts), ms:`,
    );
    printLatencyTable(rows, 44);
    for (const n of notes) console.log(`  ${n}`);
  } catch (err) {
    failure = err;
  } finally {
    interrupts.release();
    const live = daemon.liveCri;
    if (live !== undefined)
      await cleanup.step('list pods', () => removeAllPods(live, cleanup, CALL_TIMEOUT_MS));
    await daemon.stop(cleanup, { createdIds });
    cleanup.print(failure);
  }
}

await main();
