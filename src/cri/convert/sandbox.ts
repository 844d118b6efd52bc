/** Pure conversions from pod sandbox records to CRI messages, and CRI filters applied to them. */
import type { PodSandbox } from '../../generated/runtime/v1/PodSandbox.js';
import type { PodSandboxFilter__Output } from '../../generated/runtime/v1/PodSandboxFilter.js';
import type { PodSandboxStatus } from '../../generated/runtime/v1/PodSandboxStatus.js';
import type { NamespaceMode } from '../../generated/runtime/v1/NamespaceMode.js';
import type { SandboxView } from '../../sandbox/manager.js';

export function sandboxState(view: SandboxView): 'SANDBOX_READY' | 'SANDBOX_NOTREADY' {
  return view.ready ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY';
}

function metadata(view: SandboxView): PodSandbox['metadata'] {
  const c = view.sandbox.config;
  return { name: c.name, uid: c.uid, namespace: c.namespace, attempt: c.attempt };
}

export function toPodSandbox(view: SandboxView): PodSandbox {
  const c = view.sandbox.config;
  return {
    id: c.id,
    metadata: metadata(view),
    state: sandboxState(view),
    created_at: c.createdAt,
    labels: { ...c.labels },
    annotations: { ...c.annotations },
    runtime_handler: c.runtimeHandler,
  };
}

export function toPodSandboxStatus(view: SandboxView): PodSandboxStatus {
  const c = view.sandbox.config;
  const mode = (node: boolean): NamespaceMode => (node ? 'NODE' : 'POD');
  return {
    ...toPodSandbox(view),
    network: {
      ip: c.ips?.[0] ?? '',
      additional_ips: (c.ips ?? []).slice(1).map((ip) => ({ ip })),
    },
    linux: {
      namespaces: {
        options: {
          network: mode(c.hostNetwork),
          pid: c.hostPid ? 'NODE' : 'CONTAINER',
          ipc: mode(c.hostIpc),
          target_id: '',
        },
      },
    },
  };
}

/** Verbose info for `crictl inspectp`: what the runtime knows beyond the CRI message. */
export function sandboxVerboseInfo(view: SandboxView): Record<string, string> {
  return {
    info: JSON.stringify({
      id: view.sandbox.config.id,
      state: view.sandbox.state,
      netnsPath: view.sandbox.config.netnsPath,
      cgroupParent: view.sandbox.config.cgroupParent,
      runtimeHandler: view.sandbox.config.runtimeHandler,
      recoveryPending: view.recoveryPending === true,
      infraContainer: view.infra
        ? { id: view.infra.config.id, state: view.infra.state.state, pid: view.infra.state.pid ?? null }
        : null,
      config: view.sandbox.config.criConfig,
    }),
  };
}

function labelsMatch(labels: Readonly<Record<string, string>>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

export function sandboxMatches(view: SandboxView, filter: PodSandboxFilter__Output | null): boolean {
  if (!filter) return true;
  const c = view.sandbox.config;
  if (filter.id !== '' && !c.id.startsWith(filter.id)) return false;
  if (filter.state && sandboxState(view) !== filter.state.state) return false;
  return labelsMatch(c.labels, filter.label_selector);
}
