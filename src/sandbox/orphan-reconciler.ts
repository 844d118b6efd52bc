/**
 * The orphan reconciler (docs/gc.md): at start, and then every interval, it runs each collector
 * in turn — containers' processes, runc state, mounts and directories, pods' directories, pod
 * networking, images' blobs, layers and temp files — and logs and counts every removal
 * (crisp_orphans_cleaned_total{kind}). A collector that throws does not stop the others.
 *
 * Age: the start-up pass runs before crisp serves any request (nothing can be in flight), so it
 * reaps whatever the store does not know; later passes only what is also older than the grace
 * period, by mtime or process start time (collectors list before they read the store, see
 * util/orphans.ts, so the grace is a second line of defence, not the only one).
 */
import type { Logger } from '../log/logger.js';
import {
  agedEntries,
  reapTempFiles,
  type OrphanCollector,
  type OrphanKind,
  type OrphanPass,
} from '../util/orphans.js';

/** How old a leftover must be before a periodic pass reaps it. */
const ORPHAN_GRACE_MS = 60_000;

export interface OrphanReconcilerDeps {
  collectors: readonly OrphanCollector[];
  log: Logger;
  onRemoved?: (kind: OrphanKind) => void;
  graceMs?: number;
  now?: () => number;
}

export interface OrphanRemoval {
  kind: OrphanKind;
  what: string;
}

export class OrphanReconciler {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<OrphanRemoval[]> | undefined;

  constructor(private readonly deps: OrphanReconcilerDeps) {}

  /**
   * One pass over every collector; a pass under way is joined. `startup`: crisp serves nothing
   * yet, so no grace period applies.
   */
  runOnce(opts: { startup?: boolean } = {}): Promise<OrphanRemoval[]> {
    this.#running ??= this.#pass(opts.startup === true).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #pass(startup: boolean): Promise<OrphanRemoval[]> {
    const { log } = this.deps;
    const now = (this.deps.now ?? Date.now)();
    const grace = startup ? 0 : (this.deps.graceMs ?? ORPHAN_GRACE_MS);
    const removals: OrphanRemoval[] = [];
    for (const collector of this.deps.collectors) {
      const pass: OrphanPass = {
        isOld: (mtimeMs) => now - mtimeMs >= grace,
        removed: (kind, what, fields = {}) => {
          removals.push({ kind, what });
          this.deps.onRemoved?.(kind);
          log.info({ kind, what, ...fields }, 'removed an orphan');
        },
        failed: (kind, what, err) => {
          log.warn({ kind, what, err }, 'could not remove an orphan; trying again next pass');
        },
      };
      try {
        await collector.collect(pass);
      } catch (err) {
        log.error({ collector: collector.name, err }, 'orphan collection failed; trying again next pass');
      }
    }
    if (removals.length > 0) log.info({ removed: removals.length, startup }, 'orphan collection done');
    return removals;
  }

  /** Runs a pass every `intervalMs` (the timer does not keep the process alive). */
  start(intervalMs: number): void {
    this.stop();
    this.#timer = setInterval(() => {
      this.runOnce().catch((err: unknown) => {
        this.deps.log.error({ err }, 'orphan collection failed');
      });
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Temp files of atomic writes (write to a temp name, then rename) that a crash left in `dir`:
 * names matching `pattern`, old enough. Such a write takes milliseconds, so the grace period is
 * ample proof that no writer is still at it.
 */
export function staleTempFiles(name: string, dir: string, pattern: RegExp): OrphanCollector {
  return {
    name,
    collect: async (pass) => {
      await reapTempFiles(pass, await agedEntries(dir), pattern);
    },
  };
}
