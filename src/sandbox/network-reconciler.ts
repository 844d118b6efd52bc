/**
 * Finds pod networking that belongs to no pod (a crash between steps of RunPodSandbox or
 * RemovePodSandbox can leave it) and tears it down: CNI attachments in the result cache first
 * (their DEL needs the namespace), then host-local IPAM allocations that have no cache entry (a
 * crash between the plugins' ADD and the cache write), then pinned network namespaces. It is one
 * collector of the orphan reconciler (orphan-reconciler.ts), which runs it at start and then
 * periodically; each leak is logged and counted (crisp_orphans_cleaned_total{kind}, and the older
 * crisp_netns_leaked_total{kind}).
 *
 * A pod's record is committed before its namespace or CNI attachment exists and deleted only
 * after both are gone. So the namespaces, cache entries and leases are listed first and the
 * store's ids read after: anything listed whose id the store then lacks is a leak, never work
 * under way (a pod created meanwhile is in the later snapshot).
 */
import type { Logger } from '../log/logger.js';
import type { OrphanCollector, OrphanPass } from '../util/orphans.js';
import type { PodNetworkRef } from './pod-network.js';

export type NetworkLeakKind = 'netns' | 'cni_cache' | 'ipam';

export interface ReconcilerDeps {
  /** Ids of every pod sandbox in the store, whatever its state. */
  sandboxIds(): ReadonlySet<string>;
  netns: { list(): Promise<string[]>; remove(path: string): Promise<void>; pathFor(name: string): string };
  cni?: {
    cachedSandboxIds(): Promise<string[]>;
    del(pod: PodNetworkRef): Promise<void>;
    /** Sandbox ids holding IPAM allocations (host-local); optional. */
    leasedSandboxIds?(): Promise<string[]>;
  };
  log: Logger;
  onLeak?: (kind: NetworkLeakKind) => void;
}

export interface ReconcileReport {
  /** Sandbox ids whose CNI attachment was torn down. */
  cni: string[];
  /** Sandbox ids whose IPAM allocation (without a cache entry) was released. */
  ipam: string[];
  /** Namespace files removed. */
  netns: string[];
}

export class NetworkReconciler implements OrphanCollector {
  readonly name = 'network';
  #running: Promise<ReconcileReport> | undefined;

  constructor(private readonly deps: ReconcilerDeps) {}

  /** One pass; a pass already under way is joined rather than run twice. */
  runOnce(pass?: OrphanPass): Promise<ReconcileReport> {
    this.#running ??= this.#pass(pass).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** The orphan reconciler's entry point. */
  async collect(pass: OrphanPass): Promise<void> {
    await this.runOnce(pass);
  }

  #leak(pass: OrphanPass | undefined, kind: NetworkLeakKind, what: string, msg: string): void {
    this.deps.onLeak?.(kind);
    if (pass) pass.removed(kind, what);
    else this.deps.log.warn({ kind, what }, msg);
  }

  #failed(pass: OrphanPass | undefined, kind: NetworkLeakKind, what: string, err: unknown): void {
    if (pass) pass.failed(kind, what, err);
    else
      this.deps.log.error({ kind, what, err }, 'could not tear down leaked pod networking; retrying later');
  }

  async #pass(pass: OrphanPass | undefined): Promise<ReconcileReport> {
    const { netns, cni } = this.deps;
    const report: ReconcileReport = { cni: [], ipam: [], netns: [] };
    // Listed before the store is read (see the header).
    const files = new Set(await netns.list());
    const cached = new Set(cni ? await cni.cachedSandboxIds() : []);
    const leased = cni?.leasedSandboxIds ? await cni.leasedSandboxIds() : [];
    const known = this.deps.sandboxIds();
    const del = async (id: string): Promise<void> => {
      const path = netns.pathFor(id);
      await cni?.del({
        sandboxId: id,
        netnsPath: files.has(path) ? path : '',
        name: '',
        namespace: '',
        uid: '',
      });
    };
    for (const id of cached) {
      if (known.has(id)) continue;
      try {
        await del(id);
        report.cni.push(id);
        this.#leak(pass, 'cni_cache', id, 'tore down the CNI attachment of a pod that no longer exists');
      } catch (err) {
        this.#failed(pass, 'cni_cache', id, err);
      }
    }
    for (const id of leased) {
      if (known.has(id) || cached.has(id)) continue; // a cached id was torn down above (or failed)
      try {
        await del(id);
        report.ipam.push(id);
        this.#leak(pass, 'ipam', id, 'released the IPAM allocation of a pod that no longer exists');
      } catch (err) {
        this.#failed(pass, 'ipam', id, err);
      }
    }
    for (const path of files) {
      const id = path.slice(path.lastIndexOf('/') + 1);
      if (known.has(id)) continue;
      try {
        await netns.remove(path);
        report.netns.push(path);
        this.#leak(pass, 'netns', path, 'removed the network namespace of a pod that no longer exists');
      } catch (err) {
        this.#failed(pass, 'netns', path, err);
      }
    }
    return report;
  }
}
