/** RunPodSandbox: validate and convert the PodSandboxConfig, then let the sandbox engine run it. */
import { missingSysctls, podSysctls } from '../../container/spec.js';
import { InvalidArgumentError } from '../../errors.js';
import type { RunPodSandboxRequest__Output } from '../../generated/runtime/v1/RunPodSandboxRequest.js';
import type { RunPodSandboxResponse } from '../../generated/runtime/v1/RunPodSandboxResponse.js';
import type { JsonValue } from '../../sandbox/manager.js';
import type { SandboxManager } from '../../sandbox/manager.js';
import type { PodPortMapping } from '../../sandbox/pod-network.js';
import type { PortMapping__Output } from '../../generated/runtime/v1/PortMapping.js';
import type { UnaryImpl } from '../handler.js';
import { requireMessage } from '../validate.js';
import { usernsFromCri } from '../convert/userns.js';
import { checkPodSandboxConfig } from '../checks.js';
import { checkText } from '../limits.js';

/**
 * The port mappings CNI's portmap gets: those with a host port (kubelet also lists container ports
 * without one, for information, and those are taken as they come). A mapped port out of 1..65535
 * is INVALID_ARGUMENT naming the entry: no iptables rule can hold it. A host-network pod's ports
 * are the node's own and need no mapping.
 */
function portMappings(list: PortMapping__Output[], hostNetwork: boolean): PodPortMapping[] {
  const out: PodPortMapping[] = [];
  list.forEach((m, i) => {
    if (m.host_port === 0 || hostNetwork) return;
    const field = `config.port_mappings[${i}]`;
    for (const [name, value] of [
      ['container_port', m.container_port],
      ['host_port', m.host_port],
    ] as const) {
      if (!Number.isInteger(value) || value < 1 || value > 65535) {
        throw new InvalidArgumentError(
          `${field}.${name}`,
          `${value} is not a port (1..65535), and the mapping has a host port for CNI's portmap to set up`,
        );
      }
    }
    const protocol = m.protocol === 'UDP' ? 'udp' : m.protocol === 'SCTP' ? 'sctp' : 'tcp';
    out.push({ hostPort: m.host_port, containerPort: m.container_port, protocol, hostIP: m.host_ip });
  });
  return out;
}

export function runPodSandbox(
  sandboxes: SandboxManager,
): UnaryImpl<RunPodSandboxRequest__Output, RunPodSandboxResponse> {
  return async (req, scope) => {
    const config = requireMessage(req.config, 'config');
    // Sizes, counts and characters first: nothing below sees an oversized or malformed field.
    const meta = checkPodSandboxConfig(config, 'config');
    checkText(req.runtime_handler, 'runtime_handler', 256);
    const { name, namespace, uid } = meta;
    const ns = config.linux?.security_context?.namespace_options;
    const hostNetwork = ns?.network === 'NODE';
    const hostIpc = ns?.ipc === 'NODE';
    const hostPid = ns?.pid === 'NODE';
    const usernsField = 'config.linux.security_context.namespace_options.userns_options';
    const userns = usernsFromCri(ns?.userns_options, usernsField);
    if (userns && (hostNetwork || hostPid || hostIpc)) {
      throw new InvalidArgumentError(
        usernsField,
        'a pod in its own user namespace cannot share the node’s network, PID or IPC namespace',
      );
    }
    // Refused here, before any work: runc would refuse them only once the pod is half made.
    const sysctls = podSysctls(config.linux?.sysctls ?? {}, { hostNetwork, hostIpc });
    const [missing] = await missingSysctls(Object.keys(sysctls));
    if (missing !== undefined) {
      throw new InvalidArgumentError(
        `config.linux.sysctls[${JSON.stringify(missing)}]`,
        `${JSON.stringify(missing)} is not a sysctl of this node's kernel`,
      );
    }
    const id = await sandboxes.run(
      {
        name,
        namespace,
        uid,
        attempt: meta.attempt,
        hostname: config.hostname,
        logDirectory: config.log_directory,
        dns: config.dns_config
          ? {
              servers: config.dns_config.servers,
              searches: config.dns_config.searches,
              options: config.dns_config.options,
            }
          : undefined,
        labels: config.labels,
        annotations: config.annotations,
        cgroupParent: config.linux?.cgroup_parent ?? '',
        hostNetwork,
        hostPid,
        hostIpc,
        privileged: config.linux?.security_context?.privileged ?? false,
        sysctls,
        ...(userns ? { userns } : {}),
        portMappings: portMappings(config.port_mappings, hostNetwork),
        runtimeHandler: req.runtime_handler,
        criConfig: JSON.parse(JSON.stringify(config)) as JsonValue,
      },
      scope.signal,
    );
    return { pod_sandbox_id: id };
  };
}
