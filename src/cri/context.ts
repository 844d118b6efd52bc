/**
 * What the CRI layer needs from the rest of the daemon. The composition root (src/daemon.ts)
 * builds these from the engines; the RPC files see only these interfaces.
 */
import type { Logger } from '../log/logger.js';
import type { CrispMetrics } from '../metrics/registry.js';
import type { InflightTracker } from '../metrics/inflight.js';
import type { ImageService } from '../image/service.js';
import type { ContainerManager } from '../container/manager.js';
import type { SandboxManager } from '../sandbox/manager.js';
import type { StreamingServer } from '../streaming/server.js';

/** One readiness condition as the runtime sees it. */
export interface Readiness {
  ready: boolean;
  /** CamelCase reason when not ready, e.g. NoCNIConfiguration. */
  reason: string;
  message: string;
}

export interface RuntimeHandlerInfo {
  /** "" is the default handler (kubelet's runtimeClassName unset). */
  name: string;
  recursiveReadOnlyMounts: boolean;
  userNamespaces: boolean;
}

/** Facts about the runtime for Version, Status and RuntimeConfig. */
export interface RuntimeInfo {
  runtimeVersion: string;
  cgroupDriver: 'cgroupfs' | 'systemd';
  handlers: RuntimeHandlerInfo[];
  supplementalGroupsPolicy: boolean;
  runtimeReady(): Promise<Readiness>;
  networkReady(): Promise<Readiness>;
  /** Extra JSON-able facts for `crictl info` (Status with verbose set), keyed by section. */
  verboseInfo(): Record<string, unknown>;
}

export interface CriContext {
  log: Logger;
  metrics: CrispMetrics;
  inflight: InflightTracker;
  runtime: RuntimeInfo;
  images: ImageService;
  sandboxes: SandboxManager;
  containers: ContainerManager;
  streaming: StreamingServer;
  /**
   * Checks every request before its RPC runs (server.ts sets it: unknown enum values); throws
   * InvalidArgumentError naming the field.
   */
  checkRequest?: (method: string, request: unknown) => void;
}
