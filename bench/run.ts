/**
 * make bench: starts the real daemon (its own temp dirs, as the e2e tests do) and reports
 * latency percentiles and memory for the operations crisp implements. A report, not a test:
 * nothing here fails on a time.
 */
import { writeBenchConfig } from './bench-daemon.js';
import { memoryOf, percentiles, sum, type Percentiles } from './measure.js';
import { connectCri, type CriClients } from '../test/e2e/harness/cri-client.js';
import { makeTestDirs, removeTestDirs, spawnCrisp } from '../test/e2e/harness/daemon.js';
import { startRegistry } from '../test/e2e/harness/registry.js';
import { bigImage, busyboxImage } from '../test/e2e/harness/test-images.js';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);

interface Row extends Percentiles {
  operation: string;
  perSecond: number;
}

async function measure(operation: string, concurrency: number, fn: () => Promise<unknown>): Promise<Row> {
  for (let i = 0; i < 200; i++) await fn(); // warm-up
  const samples: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < ITERATIONS) {
      next++;
      const t0 = performance.now();
      await fn();
      samples.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  return {
    operation: concurrency > 1 ? `${operation} x${concurrency}` : operation,
    ...percentiles(samples),
    perSecond: samples.length / elapsed,
  };
}

async function main(): Promise<void> {
  const dirs = await makeTestDirs('crisp-bench-');
  const registry = await startRegistry();
  const big = await bigImage(200, 4);
  await registry.push('bench/big', '1', big);
  await registry.push('bench/busybox', '1', await busyboxImage());
  await writeBenchConfig(dirs, registry.host);

  const t0 = performance.now();
  const crisp = spawnCrisp(dirs);
  await crisp.ready();
  const startupMs = performance.now() - t0;
  let cri: CriClients | undefined;
  try {
    cri = await connectCri(dirs.socket);
    const c = cri;
    const idle = await memoryOf(crisp.pid);
    const rows: Row[] = [];
    for (const conc of [1, CONCURRENCY]) {
      rows.push(await measure('Version', conc, () => c.runtime.Version({})));
      rows.push(await measure('Status', conc, () => c.runtime.Status({})));
      rows.push(await measure('Status verbose', conc, () => c.runtime.Status({ verbose: true })));
      rows.push(await measure('RuntimeConfig', conc, () => c.runtime.RuntimeConfig({})));
    }
    const scrape = await measure('GET /metrics', 1, async () =>
      (await fetch(`${crisp.metricsUrl}/metrics`)).text(),
    );
    rows.push(scrape);
    const loaded = await memoryOf(crisp.pid);

    // Image operations: lookups, then cold pulls (the image is removed, and its layers
    // collected, before each run, so every run downloads and unpacks everything).
    const small = `${registry.host}/bench/busybox:1`;
    await c.image.PullImage({ image: { image: small } });
    rows.push(await measure('ListImages', 1, () => c.image.ListImages({})));
    rows.push(await measure('ImageStatus', 1, () => c.image.ImageStatus({ image: { image: small } })));
    const coldPulls = async (name: string, ref: string, runs: number): Promise<Row> => {
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) {
        await c.image.RemoveImage({ image: { image: ref } });
        const t = performance.now();
        await c.image.PullImage({ image: { image: ref } }, 600_000);
        samples.push(performance.now() - t);
      }
      return { operation: name, ...percentiles(samples), perSecond: runs / (sum(samples) / 1000) };
    };
    rows.push(await coldPulls('PullImage busybox cold', small, 20));
    const beforeBig = await memoryOf(crisp.pid);
    rows.push(await coldPulls('PullImage 200MiB/4 cold', `${registry.host}/bench/big:1`, 3));
    const afterBig = await memoryOf(crisp.pid);

    const fmt = (ms: number): string => ms.toFixed(3).padStart(9);
    console.log(`crisp bench — ${ITERATIONS} calls per row, over the unix socket, latency in ms`);
    console.log(
      `${'operation'.padEnd(24)}${'n'.padStart(6)}${'p50'.padStart(10)}${'p90'.padStart(10)}${'p99'.padStart(10)}${'max'.padStart(10)}${'calls/s'.padStart(10)}`,
    );
    for (const r of rows) {
      console.log(
        `${r.operation.padEnd(24)}${String(r.n).padStart(6)} ${fmt(r.p50)} ${fmt(r.p90)} ${fmt(r.p99)} ${fmt(r.max)}${Math.round(r.perSecond).toString().padStart(10)}`,
      );
    }
    console.log(`daemon start to ready: ${startupMs.toFixed(0)} ms`);
    console.log(
      `daemon memory: idle RSS ${idle.rssMiB.toFixed(1)} MiB; after the RPC rows RSS ${loaded.rssMiB.toFixed(1)} MiB, peak ${loaded.peakMiB.toFixed(1)} MiB`,
    );
    console.log(
      `200 MiB pulls: RSS before ${beforeBig.rssMiB.toFixed(1)} MiB, after ${afterBig.rssMiB.toFixed(1)} MiB; daemon peak RSS ${afterBig.peakMiB.toFixed(1)} MiB`,
    );
  } finally {
    cri?.close();
    await crisp.stop();
    await registry.stop();
    await big.dispose();
    await removeTestDirs(dirs);
  }
}

await main();
