/**
 * Facts about processes from /proc, for recovery: whether a pid is alive (and still the process
 * it was), when it started, when the node booted. All reads are async and tolerate a process
 * that goes away mid-read (the answer is then "gone").
 */
import { readdir, readFile } from 'node:fs/promises';

/** Clock ticks per second for /proc/<pid>/stat times (USER_HZ; 100 on every Linux architecture crisp runs on). */
export const CLK_TCK = 100;

/** The node's boot time (btime in /proc/stat), in nanoseconds since the epoch. */
export async function bootTimeNs(): Promise<bigint> {
  const stat = await readFile('/proc/stat', 'utf8');
  const line = stat.split('\n').find((l) => l.startsWith('btime '));
  const seconds = line === undefined ? NaN : Number(line.slice(6).trim());
  if (!Number.isInteger(seconds)) throw new Error('/proc/stat has no btime line');
  return BigInt(seconds) * 1_000_000_000n;
}

/** Field 22 of a /proc/<pid>/stat line: the start time in clock ticks after boot. */
export function startTicksOf(statLine: string): number | undefined {
  // The command name (field 2) may contain spaces and parentheses: fields restart after the last ')'.
  const ticks = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ')[19];
  return ticks === undefined || !/^\d+$/.test(ticks) ? undefined : Number(ticks);
}

/** When `pid` started, in nanoseconds since the epoch (10 ms resolution), or undefined if it is gone. */
export async function processStartedAtNs(pid: number): Promise<bigint | undefined> {
  let ticks: number | undefined;
  try {
    ticks = startTicksOf(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
  if (ticks === undefined) return undefined;
  return (await bootTimeNs()) + (BigInt(ticks) * 1_000_000_000n) / BigInt(CLK_TCK);
}

/** The argv of `pid`, or undefined if it is gone (or a zombie, whose cmdline is empty). */
export async function processArgv(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    if (raw === '') return undefined;
    return raw.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

/** Whether `pid` runs and is not a zombie. */
export async function processAlive(pid: number): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** A process below another, as /proc/<pid>/stat shows it. */
export interface ChildProcessInfo {
  pid: number;
  ppid: number;
  /** Exited, not yet reaped by its parent. */
  zombie: boolean;
}

/** Parent and state of a /proc/<pid>/stat line (fields 4 and 3). */
export function parentAndStateOf(statLine: string): { ppid: number; state: string } | undefined {
  const rest = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ');
  const state = rest[0];
  const ppid = rest[1];
  if (state === undefined || ppid === undefined || !/^\d+$/.test(ppid)) return undefined;
  return { ppid: Number(ppid), state };
}

/**
 * Every process below `root` (children, their children, ...), read from /proc in one pass.
 * A process that ends while /proc is read is left out.
 */
export async function descendantsOf(root: number): Promise<ChildProcessInfo[]> {
  const byParent = new Map<number, ChildProcessInfo[]>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let facts: { ppid: number; state: string } | undefined;
    try {
      facts = parentAndStateOf(await readFile(`/proc/${name}/stat`, 'utf8'));
    } catch {
      continue; // gone meanwhile
    }
    if (facts === undefined) continue;
    const info = { pid: Number(name), ppid: facts.ppid, zombie: facts.state === 'Z' || facts.state === 'X' };
    const siblings = byParent.get(facts.ppid);
    if (siblings === undefined) byParent.set(facts.ppid, [info]);
    else siblings.push(info);
  }
  const out: ChildProcessInfo[] = [];
  const queue = [root];
  for (let parent = queue.shift(); parent !== undefined; parent = queue.shift()) {
    for (const child of byParent.get(parent) ?? []) {
      out.push(child);
      queue.push(child.pid);
    }
  }
  return out;
}
