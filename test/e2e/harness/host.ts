/** Looking at the host from a test: waiting for a condition, mounts and processes. */
import { readFile, readdir } from 'node:fs/promises';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns something other than undefined (bounded). */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Mount points at or under `dir` right now. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Processes whose command line mentions `needle`. */
export async function processesMentioning(needle: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = (await readFile(`/proc/${name}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      if (cmd.includes(needle)) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** rx/tx bytes per interface of a process's network namespace, from /proc/<pid>/net/dev. */
export async function netDev(pid: number): Promise<Map<string, { rx: bigint; tx: bigint }>> {
  const out = new Map<string, { rx: bigint; tx: bigint }>();
  for (const line of (await readFile(`/proc/${pid}/net/dev`, 'utf8')).split('\n').slice(2)) {
    const [name = '', rest = ''] = line.split(':');
    const f = rest.trim().split(/\s+/);
    if (name.trim() !== '' && f.length >= 9) {
      out.set(name.trim(), { rx: BigInt(f[0] ?? '0'), tx: BigInt(f[8] ?? '0') });
    }
  }
  return out;
}
