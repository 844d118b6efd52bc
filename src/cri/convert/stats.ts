/**
 * Pure conversions from container and pod statistics (container/stats.ts) to CRI messages,
 * the stats filters, and the paging of stats lists for the Stream* RPCs. Counters are bigint
 * in the engine and decimal strings here (proto uint64/int64 load as strings).
 */
import type { ContainerStats } from '../../generated/runtime/v1/ContainerStats.js';
import type { ContainerStatsFilter__Output } from '../../generated/runtime/v1/ContainerStatsFilter.js';
import type { CpuUsage } from '../../generated/runtime/v1/CpuUsage.js';
import type { FilesystemUsage } from '../../generated/runtime/v1/FilesystemUsage.js';
import type { MemoryUsage } from '../../generated/runtime/v1/MemoryUsage.js';
import type { NetworkInterfaceUsage } from '../../generated/runtime/v1/NetworkInterfaceUsage.js';
import type { NetworkUsage } from '../../generated/runtime/v1/NetworkUsage.js';
import type { PodSandboxStats } from '../../generated/runtime/v1/PodSandboxStats.js';
import type { PodSandboxStatsFilter__Output } from '../../generated/runtime/v1/PodSandboxStatsFilter.js';
import type { ProcessUsage } from '../../generated/runtime/v1/ProcessUsage.js';
import type { SwapUsage } from '../../generated/runtime/v1/SwapUsage.js';
import type { UInt64Value } from '../../generated/runtime/v1/UInt64Value.js';
import type { StoredContainer } from '../../container/manager.js';
import {
  hasLiveCgroup,
  type ContainerStatsSample,
  type CpuSample,
  type FilesystemSample,
  type MemorySample,
  type NetworkInterfaceSample,
  type NetworkSample,
  type PodStatsSample,
  type ProcessSample,
  type SwapSample,
} from '../../container/stats.js';
import type { SandboxView } from '../../sandbox/manager.js';

/** A google.protobuf-style wrapper; null (unset) when the value is not known. */
function u64(v: bigint | undefined): UInt64Value | null {
  return v === undefined ? null : { value: v.toString() };
}

function toCpu(s: CpuSample | undefined): CpuUsage | null {
  if (!s) return null;
  return {
    timestamp: s.timestampNs.toString(),
    usage_core_nano_seconds: u64(s.usageCoreNs),
    usage_nano_cores: u64(s.usageNanoCores),
  };
}

function toMemory(s: MemorySample | undefined): MemoryUsage | null {
  if (!s) return null;
  return {
    timestamp: s.timestampNs.toString(),
    working_set_bytes: u64(s.workingSetBytes),
    available_bytes: u64(s.availableBytes),
    usage_bytes: u64(s.usageBytes),
    rss_bytes: u64(s.rssBytes),
    page_faults: u64(s.pageFaults),
    major_page_faults: u64(s.majorPageFaults),
  };
}

function toSwap(s: SwapSample | undefined): SwapUsage | null {
  if (!s) return null;
  return {
    timestamp: s.timestampNs.toString(),
    swap_usage_bytes: u64(s.usageBytes),
    swap_available_bytes: u64(s.availableBytes),
  };
}

function toFilesystem(s: FilesystemSample | undefined): FilesystemUsage | null {
  if (!s) return null;
  return {
    timestamp: s.timestampNs.toString(),
    fs_id: { mountpoint: s.mountpoint },
    used_bytes: u64(s.usedBytes),
    inodes_used: u64(s.inodesUsed),
  };
}

function toInterface(s: NetworkInterfaceSample): NetworkInterfaceUsage {
  return {
    name: s.name,
    rx_bytes: u64(s.rxBytes),
    rx_errors: u64(s.rxErrors),
    tx_bytes: u64(s.txBytes),
    tx_errors: u64(s.txErrors),
  };
}

function toNetwork(s: NetworkSample | undefined): NetworkUsage | null {
  if (!s) return null;
  return {
    timestamp: s.timestampNs.toString(),
    default_interface: toInterface(s.defaultInterface),
    interfaces: s.interfaces.map(toInterface),
  };
}

function toProcess(s: ProcessSample | undefined): ProcessUsage | null {
  if (!s) return null;
  return { timestamp: s.timestampNs.toString(), process_count: u64(s.count) };
}

export function toContainerStats(c: StoredContainer, s: ContainerStatsSample): ContainerStats {
  return {
    attributes: {
      id: c.config.id,
      metadata: { name: c.config.name, attempt: c.config.attempt },
      labels: { ...c.config.labels },
      annotations: { ...c.config.annotations },
    },
    cpu: toCpu(s.cpu),
    memory: toMemory(s.memory),
    writable_layer: toFilesystem(s.writableLayer),
    swap: toSwap(s.swap),
  };
}

export function toPodSandboxStats(view: SandboxView, s: PodStatsSample): PodSandboxStats {
  const c = view.sandbox.config;
  return {
    attributes: {
      id: c.id,
      metadata: { name: c.name, uid: c.uid, namespace: c.namespace, attempt: c.attempt },
      labels: { ...c.labels },
      annotations: { ...c.annotations },
    },
    linux: {
      cpu: toCpu(s.cpu),
      memory: toMemory(s.memory),
      network: toNetwork(s.network),
      process: toProcess(s.process),
      containers: s.containers.map(({ container, stats }) => toContainerStats(container, stats)),
    },
  };
}

function labelsMatch(labels: Readonly<Record<string, string>>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/**
 * Which containers have stats: application containers that run (CRI RUNNING, paused included),
 * as containerd lists them, narrowed by the filter (id and pod id by prefix, labels exactly).
 */
export function containerStatsMatches(
  c: StoredContainer,
  filter: ContainerStatsFilter__Output | null,
): boolean {
  if (c.config.kind !== 'app' || !hasLiveCgroup(c)) return false;
  if (!filter) return true;
  if (filter.id !== '' && !c.config.id.startsWith(filter.id)) return false;
  if (filter.pod_sandbox_id !== '' && !c.config.sandboxId.startsWith(filter.pod_sandbox_id)) return false;
  return labelsMatch(c.config.labels, filter.label_selector);
}

/** Which pods have stats: ready ones, narrowed by the filter (id by prefix, labels exactly). */
export function podSandboxStatsMatches(
  view: SandboxView,
  filter: PodSandboxStatsFilter__Output | null,
): boolean {
  if (!view.ready) return false;
  if (!filter) return true;
  if (filter.id !== '' && !view.sandbox.config.id.startsWith(filter.id)) return false;
  return labelsMatch(view.sandbox.config.labels, filter.label_selector);
}

// --- paging --------------------------------------------------------------------------------------

/** Objects per Stream* message at most. */
export const STATS_PAGE_ITEMS = 200;
/** Estimated encoded bytes per Stream* message at most (kubelet's limit is 16 MiB). */
export const STATS_PAGE_BYTES = 4 * 1024 * 1024;
/** What one object's stats cost on the wire besides its labels and annotations (generous). */
const STATS_FIXED_BYTES = 1024;

function mapBytes(m: Readonly<Record<string, string>>): number {
  let n = 0;
  for (const [k, v] of Object.entries(m)) n += Buffer.byteLength(k) + Buffer.byteLength(v) + 8;
  return n;
}

/** A generous estimate of one object's stats message: labels and annotations dominate. */
export function statsSizeEstimate(
  obj: { labels: Readonly<Record<string, string>>; annotations: Readonly<Record<string, string>> },
  nested = 0,
): number {
  return STATS_FIXED_BYTES + mapBytes(obj.labels) + mapBytes(obj.annotations) + nested;
}

/** Splits `items` into pages of at most STATS_PAGE_ITEMS and (estimated) STATS_PAGE_BYTES. */
export function statsPages<T>(items: readonly T[], sizeOf: (item: T) => number): T[][] {
  const pages: T[][] = [];
  let page: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (page.length > 0 && (page.length >= STATS_PAGE_ITEMS || bytes + size > STATS_PAGE_BYTES)) {
      pages.push(page);
      page = [];
      bytes = 0;
    }
    page.push(item);
    bytes += size;
  }
  if (page.length > 0) pages.push(page);
  return pages;
}
