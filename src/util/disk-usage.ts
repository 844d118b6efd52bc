/**
 * Allocated bytes and inodes under a directory, as `du` counts them: blocks × 512, hard links
 * once, the top itself included. Used for a container's writable layer (bounded, it is on the
 * stats path) and for unpacked image layers (unbounded, measured once per layer).
 */
import type { Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface DiskUsage {
  bytes: bigint;
  inodes: bigint;
  /** False when the walk stopped at its entry or time bound (the numbers are then a floor). */
  complete: boolean;
}

/** Errors meaning "not there (any more)": the tree may change while it is walked. */
const ABSENT = new Set(['ENOENT', 'ENOTDIR']);
const STAT_BATCH = 64;

function absent(err: unknown): boolean {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' && ABSENT.has(err.code);
}

/**
 * The usage under `top`, or undefined when `top` does not exist. With `bounds`, the walk stops
 * after that many entries or milliseconds and says so (`complete: false`).
 */
export async function diskUsage(
  top: string,
  bounds: { maxEntries: number; deadlineMs: number } = { maxEntries: Infinity, deadlineMs: Infinity },
): Promise<DiskUsage | undefined> {
  const started = performance.now();
  let topStat;
  try {
    topStat = await lstat(top);
  } catch (err) {
    if (absent(err)) return undefined;
    throw err;
  }
  let bytes = BigInt(topStat.blocks) * 512n;
  let inodes = 1n;
  let seenEntries = 0;
  const seen = new Set<string>();
  const dirs = topStat.isDirectory() ? [top] : [];
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (absent(err)) continue; // removed while we walked
      throw err;
    }
    for (let i = 0; i < entries.length; i += STAT_BATCH) {
      if (seenEntries >= bounds.maxEntries || performance.now() - started > bounds.deadlineMs) {
        return { bytes, inodes, complete: false };
      }
      const batch = entries.slice(i, i + STAT_BATCH).map((e) => join(dir, e.name));
      seenEntries += batch.length;
      const stats = await Promise.all(batch.map((p) => lstat(p).catch(() => undefined)));
      for (const [j, st] of stats.entries()) {
        if (!st) continue;
        if (st.nlink > 1 && !st.isDirectory()) {
          const key = `${st.dev}:${st.ino}`;
          if (seen.has(key)) continue;
          seen.add(key);
        }
        inodes += 1n;
        bytes += BigInt(st.blocks) * 512n;
        const child = batch[j];
        if (st.isDirectory() && child !== undefined) dirs.push(child);
      }
    }
  }
  return { bytes, inodes, complete: true };
}
