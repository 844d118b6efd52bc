/** Pure conversions from container records to CRI messages, and CRI filters applied to them. */
import type { Container } from '../../generated/runtime/v1/Container.js';
import type { ContainerFilter__Output } from '../../generated/runtime/v1/ContainerFilter.js';
import type { ContainerStatus } from '../../generated/runtime/v1/ContainerStatus.js';
import type { MountPropagation } from '../../generated/runtime/v1/MountPropagation.js';
import type { Signal } from '../../generated/runtime/v1/Signal.js';
import type { StoredContainer } from '../../container/manager.js';
import { toCriState } from '../../container/state.js';
import { reportedResources } from './resources.js';

const propagation: Record<StoredContainer['config']['mounts'][number]['propagation'], MountPropagation> = {
  private: 'PROPAGATION_PRIVATE',
  'host-to-container': 'PROPAGATION_HOST_TO_CONTAINER',
  bidirectional: 'PROPAGATION_BIDIRECTIONAL',
};

export function toContainer(c: StoredContainer): Container {
  return {
    id: c.config.id,
    pod_sandbox_id: c.config.sandboxId,
    metadata: { name: c.config.name, attempt: c.config.attempt },
    image: { image: c.config.image, annotations: {} },
    image_ref: c.config.imageRef,
    image_id: c.config.imageRef,
    state: toCriState(c.state.state),
    created_at: c.config.createdAt,
    labels: { ...c.config.labels },
    annotations: { ...c.config.annotations },
  };
}

export function toContainerStatus(c: StoredContainer): ContainerStatus {
  const s = c.state;
  return {
    ...toContainer(c),
    started_at: s.startedAt ?? '0',
    finished_at: s.finishedAt ?? '0',
    exit_code: s.exitCode ?? 0,
    reason: s.reason ?? '',
    message: s.message ?? '',
    mounts: c.config.mounts.map((m) => ({
      container_path: m.containerPath,
      host_path: m.hostPath,
      readonly: m.readonly,
      propagation: propagation[m.propagation],
    })),
    log_path: c.config.logPath,
    resources: (() => {
      const linux = reportedResources(s.resources, c.config.criConfig);
      return linux ? { linux } : null;
    })(),
    ...(s.user
      ? {
          user: {
            linux: {
              uid: String(s.user.uid),
              gid: String(s.user.gid),
              supplemental_groups: s.user.supplementalGroups.map(String),
            },
          },
        }
      : {}),
    stop_signal: (/^SIG[A-Z0-9]+$/.test(c.config.stopSignal)
      ? c.config.stopSignal
      : 'RUNTIME_DEFAULT') as Signal,
  };
}

export function containerVerboseInfo(
  c: StoredContainer,
  bundle: string,
  recoveryPending = false,
): Record<string, string> {
  return {
    info: JSON.stringify({
      id: c.config.id,
      sandboxId: c.config.sandboxId,
      state: c.state.state,
      pid: c.state.pid ?? null,
      conmonPid: c.state.conmonPid ?? null,
      bundle,
      stopSignal: c.config.stopSignal,
      /** true until the start-up recovery has checked the record against runc and conmon. */
      recoveryPending,
      config: c.config.criConfig,
    }),
  };
}

export function containerMatches(c: StoredContainer, filter: ContainerFilter__Output | null): boolean {
  if (c.config.kind !== 'app') return false;
  if (!filter) return true;
  if (filter.id !== '' && !c.config.id.startsWith(filter.id)) return false;
  if (filter.pod_sandbox_id !== '' && !c.config.sandboxId.startsWith(filter.pod_sandbox_id)) return false;
  if (filter.state && toCriState(c.state.state) !== filter.state.state) return false;
  return Object.entries(filter.label_selector).every(([k, v]) => c.config.labels[k] === v);
}
