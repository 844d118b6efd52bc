/**
 * make bench (streaming): the real daemon on real runc + conmon (its own temp dirs and registry,
 * as bench/pods.ts), one pod with busybox containers, and the streaming server measured as
 * kubelet's clients use it:
 * - Exec RPC latency, and the time from the Exec RPC to the first byte back of `exec true` (the
 *   v4 Status on the error stream) and of `exec echo` (its stdout) over SPDY, one at a time;
 * - port-forward throughput: BENCH_PF_MB (100) MB read from a `nc` server in the pod through an
 *   SPDY port-forward, compared with the same read over a direct TCP connection from the node to
 *   the pod's IP and with one made inside the pod's network namespace (crisp's connector alone);
 * - the daemon's memory before and after.
 * A report, not a test: nothing here fails on a time. Everything is removed at the end.
 *
 * BENCH_EXEC_RUNS (100) sets the exec samples.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
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
import { isRefusal, openStream, readAll, spdyExec, spdyUpgrade } from '../test/e2e/harness/stream-client.js';
import { createAndStart } from '../test/e2e/harness/cri-client.js';
import { dialInNetns } from '../src/netns/dial.js';

const EXEC_RUNS = envInt('BENCH_EXEC_RUNS', 100);
const PF_MB = envInt('BENCH_PF_MB', 100);
const PF_RUNS = envInt('BENCH_PF_RUNS', 3);
const CALL_TIMEOUT_MS = 120_000;
const PORT = 9000;

async function main(): Promise<void> {
  const interrupts = new Interrupts();
  const daemon = new BenchDaemon();
  const { elapsed, progress } = benchClock('streaming');
  const rows: Row[] = [];
  const notes: string[] = [];
  const createdIds = new Set<string>();
  let failure: unknown;
  try {
    const { cri, crisp, image, logDir, dirs } = await daemon.start('crisp-bench-stream-', CALL_TIMEOUT_MS);
    const idle = await memoryOf(crisp.pid);
    const podConfig = {
      metadata: { name: 'stream-bench', namespace: 'bench', uid: 'uid-stream-bench', attempt: 0 },
      log_directory: join(logDir, 'stream-bench'),
    };
    const { pod_sandbox_id: podId } = await cri.runtime.RunPodSandbox({ config: podConfig }, CALL_TIMEOUT_MS);
    createdIds.add(podId);
    const start = async (name: string, command: string[]): Promise<string> => {
      const id = await createAndStart(
        cri,
        { id: podId, config: podConfig },
        { metadata: { name }, image: { image }, command, log_path: `${name}.log` },
      );
      createdIds.add(id);
      return id;
    };
    const shell = await start('shell', ['sh', '-c', 'while true; do sleep 1; done']);
    const bytes = PF_MB * 1024 * 1024;
    await start('source', ['sh', '-c', `while true; do head -c ${bytes} /dev/zero | nc -l -p ${PORT}; done`]);

    progress(`exec x${EXEC_RUNS}`);
    const rpc: number[] = [];
    const ttfbTrue: number[] = [];
    const ttfbEcho: number[] = [];
    for (let i = 0; i < EXEC_RUNS; i++) {
      for (const [cmd, samples] of [
        [['true'], ttfbTrue],
        [['echo', 'x'], ttfbEcho],
      ] as const) {
        const t0 = performance.now();
        const { url } = await cri.runtime.Exec({
          container_id: shell,
          cmd: [...cmd],
          stdout: true,
          stderr: true,
        });
        rpc.push(performance.now() - t0);
        let first: number | undefined;
        const res = await spdyExec(url, {
          onOpen: ({ stdout }) => {
            stdout?.once('data', () => (first ??= performance.now()));
          },
        });
        // `true` writes nothing: its first byte is the Status on the error stream.
        samples.push((cmd[0] === 'true' ? performance.now() : (first ?? performance.now())) - t0);
        if (res.exitCode !== 0) throw new Error(`exec ${cmd.join(' ')} failed: ${res.errorStream}`);
      }
    }
    rows.push(row('Exec RPC (URL handed out)', rpc));
    rows.push(
      row('exec true: RPC to exit status', ttfbTrue, 'SPDY v4, upgrade + 3 streams + conmon + runc exec'),
    );
    rows.push(row('exec echo x: RPC to first stdout byte', ttfbEcho));

    progress(`port-forward ${PF_MB} MB x${PF_RUNS}`);
    const mbps = (ms: number): number => PF_MB / (ms / 1000);
    const viaForward: number[] = [];
    for (let i = 0; i < PF_RUNS; i++) {
      const { url } = await cri.runtime.PortForward({ pod_sandbox_id: podId, port: [PORT] });
      const up = await spdyUpgrade(url, ['portforward.k8s.io']);
      if (isRefusal(up)) throw new Error(`port-forward refused: ${up.status}`);
      const t0 = performance.now();
      const headers = { port: String(PORT), requestID: '0' };
      const err = await openStream(up.session, { ...headers, streamType: 'error' });
      err.end();
      const data = await openStream(up.session, { ...headers, streamType: 'data' });
      // busybox nc quits at the first EOF it reads: keep our side open until the data is in.
      const got = await readAll(data);
      data.end();
      viaForward.push(performance.now() - t0);
      up.session.destroy();
      if (got.length !== bytes) throw new Error(`port-forward carried ${got.length} of ${bytes} bytes`);
      await new Promise((r) => setTimeout(r, 300)); // the nc loop listens again
    }
    const status = await cri.runtime.PodSandboxStatus({ pod_sandbox_id: podId });
    const ip = status.status?.network?.ip ?? '';
    const direct: number[] = [];
    for (let i = 0; i < PF_RUNS; i++) {
      const t0 = performance.now();
      const n = await new Promise<number>((resolve, reject) => {
        let total = 0;
        const sock = connect(PORT, ip);
        sock.on('data', (d: Buffer) => (total += d.length));
        sock.on('end', () => {
          sock.end();
          resolve(total);
        });
        sock.on('error', reject);
      });
      direct.push(performance.now() - t0);
      if (n !== bytes) throw new Error(`direct read got ${n} of ${bytes} bytes`);
      await new Promise((r) => setTimeout(r, 300));
    }
    const inNetns: number[] = [];
    const infoNs = join(dirs.run, 'netns', podId);
    for (let i = 0; i < PF_RUNS; i++) {
      const t0 = performance.now();
      // The same connector crisp uses, read straight from its stdout: the cost without SPDY.
      const { process: p } = await dialInNetns(infoNs, PORT);
      const n = (await readAll(p.stdout)).length;
      p.stdin.end();
      await p.exited;
      if (n !== bytes) throw new Error(`in-netns read got ${n} of ${bytes} bytes`);
      inNetns.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 300));
    }
    const throughput = (name: string, samples: number[], note: string): void => {
      const r = row(name, samples, note);
      rows.push({ ...r, note: `${note}; ${mbps(r.p50).toFixed(0)} MB/s at p50` });
    };
    throughput(`port-forward ${PF_MB} MB (SPDY)`, viaForward, 'through crisp: SPDY + crisp-netns-connect');
    throughput(`direct ${PF_MB} MB node -> pod IP`, direct, 'TCP over the bridge, no crisp');
    throughput(`direct ${PF_MB} MB inside the pod netns`, inNetns, 'crisp-netns-connect alone, no SPDY');
    const loaded = await memoryOf(crisp.pid);
    notes.push(
      `daemon RSS: ${mib(idle.rssMiB)} MiB before, ${mib(loaded.rssMiB)} MiB after (peak ${mib(loaded.peakMiB)} MiB)`,
    );
  } catch (err) {
    failure = err;
  } finally {
    progress('cleaning up');
    const cleanup = new Cleanup();
    const c = daemon.liveCri;
    if (c !== undefined) await cleanup.step('list pods', () => removeAllPods(c, cleanup, CALL_TIMEOUT_MS));
    await daemon.stop(cleanup, { createdIds });
    interrupts.release();
    console.log(await machineLine('streaming'));
    console.log('latency in ms (p50 / p95 / max); throughput rows: time for the whole transfer');
    printLatencyTable(rows, 44);
    for (const n of notes) console.log(n);
    console.log(`total run time: ${(elapsed() / 1000).toFixed(1)} s`);
    cleanup.print(failure);
  }
}

await main();
