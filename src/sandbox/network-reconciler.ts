/**
 * Finds pod networking that belongs to no pod (a crash between steps of RunPodSandbox or
 * RemovePodSandbox can leave it) and tears it down: CNI attachments in the result cache first
 * (their DEL needs the namespace), then pinned network namespaces. Runs at start and then
 * periodically; each leak is logged and counted (crisp_netns_leaked_total{kind}).
 *
 * A pod's record is committed before its namespace or CNI attachment exists and deleted only
 * after both are gone, so anything here without a record is a leak, never work under way.
 */
import type { Logger } from '../log/logger.js';
import type { PodNetworkRef } from './pod-network.js';

export interface ReconcilerDeps {
  /** Ids of every pod sandbox in the store, whatever its state. */
  sandboxIds(): ReadonlySet<string>;
  netns: { list(): Promise<string[]>; remove(path: string): Promise<void>; pathFor(name: string): string };
  cni?: { cachedSandboxIds(): Promise<string[]>; del(pod: PodNetworkRef): Promise<void> };
  log: Logger;
  onLeak?: (kind: 'netns' | 'cni_cache') => void;
}

export interface ReconcileReport {
  /** Sandbox ids whose CNI attachment was torn down. */
  cni: string[];
  /** Namespace files removed. */
  netns: string[];
}

export class NetworkReconciler {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<ReconcileReport> | undefined;

  constructor(private readonly deps: ReconcilerDeps) {}

  /** One pass; a pass already under way is joined rather than run twice. */
  runOnce(): Promise<ReconcileReport> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #pass(): Promise<ReconcileReport> {
    const { netns, cni, log } = this.deps;
    const report: ReconcileReport = { cni: [], netns: [] };
    const known = this.deps.sandboxIds();
    const files = new Set(await netns.list());
    for (const id of cni ? await cni.cachedSandboxIds() : []) {
      if (known.has(id) || !cni) continue;
      const path = netns.pathFor(id);
      try {
        await cni.del({
          sandboxId: id,
          netnsPath: files.has(path) ? path : '',
          name: '',
          namespace: '',
          uid: '',
        });
        report.cni.push(id);
        this.deps.onLeak?.('cni_cache');
        log.warn({ sandboxId: id }, 'tore down the CNI attachment of a pod that no longer exists');
      } catch (err) {
        log.error({ sandboxId: id, err }, 'could not tear down a leaked CNI attachment; retrying later');
      }
    }
    for (const path of files) {
      const id = path.slice(path.lastIndexOf('/') + 1);
      if (known.has(id)) continue;
      try {
        await netns.remove(path);
        report.netns.push(path);
        this.deps.onLeak?.('netns');
        log.warn({ netns: path }, 'removed the network namespace of a pod that no longer exists');
      } catch (err) {
        log.error({ netns: path, err }, 'could not remove a leaked network namespace; retrying later');
      }
    }
    return report;
  }

  /** Runs a pass every `intervalMs` (the timer does not keep the process alive). */
  start(intervalMs: number): void {
    this.stop();
    this.#timer = setInterval(() => {
      this.runOnce().catch((err: unknown) => {
        this.deps.log.error({ err }, 'network reconciliation failed');
      });
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
