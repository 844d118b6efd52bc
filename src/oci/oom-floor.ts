/**
 * Can crisp give its containers a lower oom_score_adj than its own? That needs
 * CAP_SYS_RESOURCE, which some hosts' root lacks (nested or restricted machines); there runc
 * fails for any container asking for a negative score (kubelet asks -997 for Guaranteed pods,
 * containerd -998 for pause). The answer decides whether such requests are raised to a floor.
 */
import { readFile, writeFile } from 'node:fs/promises';

const SELF = '/proc/self/oom_score_adj';

/** Our current score. */
export async function ownOomScoreAdj(): Promise<number> {
  return Number((await readFile(SELF, 'utf8')).trim());
}

/**
 * The floor to apply, or undefined for none. `auto` probes: lowering our own score by one is
 * allowed only with CAP_SYS_RESOURCE; raising it back is always allowed.
 */
export async function oomScoreAdjFloor(mode: 'auto' | 'always' | 'never'): Promise<number | undefined> {
  if (mode === 'never') return undefined;
  const current = await ownOomScoreAdj();
  if (mode === 'always' || current <= -1000) return current;
  try {
    await writeFile(SELF, String(current - 1));
  } catch {
    return current;
  }
  await writeFile(SELF, String(current));
  return undefined;
}
