/**
 * Small helpers the benches share: sizes from the environment, percentiles of samples, a
 * process's memory, the machine line a report starts with, and the run's clock and progress.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism, cpus, release } from 'node:os';
import { basename } from 'node:path';
import { runCommand } from '../src/util/command.js';

/** A whole number from the environment, `dflt` when it is unset or not a whole number >= 0. */
export function envInt(name: string, dflt: number): number {
  const v = Number(process.env[name] ?? dflt);
  return Number.isSafeInteger(v) && v >= 0 ? v : dflt;
}

export function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)] ?? Number.NaN;
}

export interface Percentiles {
  n: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

/** The count and percentiles of `samples` (not changed: a sorted copy is used). */
export function percentiles(samples: number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

/** One line of a latency table. */
export interface Row extends Percentiles {
  name: string;
  note: string;
}

export function row(name: string, samples: number[], note = ''): Row {
  return { name, ...percentiles(samples), note };
}

export const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
export const mib = (x: number): string => x.toFixed(1);
export const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Resident and peak resident memory of `pid` in MiB (NaN when it is gone). */
export async function memoryOf(pid: number): Promise<{ rssMiB: number; peakMiB: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kib = (key: string): number =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}

/** The first line `file args` prints (its version), or "<name> ?" when it cannot run. */
export async function versionOf(file: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await runCommand(file, args);
    return (stdout.split('\n')[0] ?? '').trim();
  } catch {
    return `${basename(file)} ?`;
  }
}

/** The report's first line: `crisp <name> bench — ` node, cores, kernel, runc and conmon. */
export async function machineLine(name: string): Promise<string> {
  const cores = cpus();
  return `crisp ${name} bench — node ${process.version}, ${availableParallelism()} cores (${cores[0]?.model.trim() ?? '?'}), linux ${release()}, ${await versionOf('runc', ['--version'])}, ${await versionOf('conmon', ['--version'])}`;
}

/** Time since the bench started, and progress lines on stderr (the report goes to stdout). */
export function benchClock(name: string): { elapsed: () => number; progress: (what: string) => void } {
  const started = performance.now();
  const elapsed = (): number => performance.now() - started;
  return {
    elapsed,
    progress: (what) => {
      process.stderr.write(`[bench ${name} ${(elapsed() / 1000).toFixed(1)} s] ${what}\n`);
    },
  };
}

/**
 * A latency row (ms) from a Prometheus histogram in `text` (the /metrics exposition): the
 * series whose labels are exactly `labels`, percentiles interpolated within its buckets (so
 * approximate), max unknown. Undefined when the series has no observations.
 */
export function histogramRow(
  text: string,
  metric: string,
  labels: Record<string, string>,
  name: string,
  note = '',
): Row | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  const buckets: { le: number; count: number }[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+)_bucket\{(.*)\} (\d+)$/.exec(line);
    if (m?.[1] !== metric || m[2] === undefined) continue;
    const parts = m[2].split(',');
    const le = parts.find((p) => p.startsWith('le='))?.slice(4, -1);
    const rest = parts.filter((p) => !p.startsWith('le=')).join(',');
    if (rest !== want || le === undefined) continue;
    buckets.push({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count: Number(m[3]) });
  }
  buckets.sort((a, b) => a.le - b.le);
  const n = buckets.at(-1)?.count ?? 0;
  if (n === 0) return undefined;
  const at = (p: number): number => {
    const rank = (p / 100) * n;
    let lower = 0;
    let below = 0;
    for (const b of buckets) {
      if (b.count >= rank) {
        if (!Number.isFinite(b.le)) return lower * 1000;
        const inBucket = b.count - below;
        const frac = inBucket === 0 ? 1 : (rank - below) / inBucket;
        return (lower + (b.le - lower) * frac) * 1000;
      }
      lower = b.le;
      below = b.count;
    }
    return Number.NaN;
  };
  return { name, n, p50: at(50), p90: at(90), p95: at(95), p99: at(99), max: Number.NaN, note };
}

/** Prints a p50 / p95 / max table of `rows` (names padded to `nameWidth`); returns the row printer. */
export function printLatencyTable(rows: Row[], nameWidth: number): (r: Row) => void {
  console.log(
    `${'operation'.padEnd(nameWidth)}${'n'.padStart(6)}${'p50'.padStart(10)}${'p95'.padStart(10)}${'max'.padStart(10)}  note`,
  );
  const f = (x: number): string => (Number.isNaN(x) ? '-' : x.toFixed(2)).padStart(10);
  const print = (r: Row): void => {
    console.log(
      `${r.name.padEnd(nameWidth)}${String(r.n).padStart(6)}${f(r.p50)}${f(r.p95)}${f(r.max)}  ${r.note}`,
    );
  };
  rows.forEach(print);
  return print;
}
