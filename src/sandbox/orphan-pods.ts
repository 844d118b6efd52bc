/**
 * Pod directories (`<run_dir>/pods/<id>`: hostname, hosts, resolv.conf and the shm tmpfs) of pods
 * the store does not know: the shm is unmounted and the directory removed through PodFiles.remove,
 * which refuses to delete through any other mount. Entries not named like a crisp id are left
 * alone. Also the temp files of their atomic writes (`<file>.tmp-<random>`) in known pods' dirs.
 */
import {
  CRISP_ID_RE,
  agedEntries,
  mountPointsUnder,
  reapTempFiles,
  type AgedEntry,
  type OrphanCollector,
  type OrphanPass,
} from '../util/orphans.js';

const TEMP_RE = /\.tmp-[0-9a-f]+$/;

export interface PodOrphanDeps {
  podsDir: string;
  /** Every pod sandbox id in the store, read when asked. */
  sandboxIds(): ReadonlySet<string>;
  podFiles: { remove(podId: string): Promise<void> };
  /** Tests replace these. */
  entries?: (dir: string) => Promise<AgedEntry[]>;
  mounts?: (dirs: readonly string[]) => Promise<string[]>;
  /** Removes a temp file (`rm -f`). */
  removeFile?: (path: string) => Promise<void>;
}

export class PodOrphans implements OrphanCollector {
  readonly name = 'pods';

  constructor(private readonly deps: PodOrphanDeps) {}

  async collect(pass: OrphanPass): Promise<void> {
    const entries = this.deps.entries ?? agedEntries;
    const mounts = this.deps.mounts ?? mountPointsUnder;
    const dirs = (await entries(this.deps.podsDir)).filter((e) => e.isDirectory && CRISP_ID_RE.test(e.name));
    const known = this.deps.sandboxIds();
    for (const e of dirs) {
      if (known.has(e.name)) {
        await reapTempFiles(pass, await entries(e.path), TEMP_RE, {
          remove: this.deps.removeFile,
          fields: { sandboxId: e.name },
        });
        continue;
      }
      if (!pass.isOld(e.mtimeMs)) continue;
      try {
        const mounted = await mounts([e.path]);
        await this.deps.podFiles.remove(e.name);
        for (const point of mounted) pass.removed('mount', point, { sandboxId: e.name });
        pass.removed('pod_dir', e.path, { sandboxId: e.name });
      } catch (err) {
        pass.failed('pod_dir', e.path, err);
      }
    }
  }
}
