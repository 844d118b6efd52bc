/**
 * What the sandbox engine asks of pod networking (netns/cni.ts's CniManager provides it), and the
 * request it builds from a pod: CNI_ARGS identity, port mappings with a host port, DNS, and the
 * bandwidth limits of the pod's kubernetes.io/{ingress,egress}-bandwidth annotations.
 */
import { InvalidArgumentError } from '../errors.js';

export interface PodPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP: string;
}

export interface PodNetworkRequest {
  sandboxId: string;
  netnsPath: string;
  name: string;
  namespace: string;
  uid: string;
  portMappings?: PodPortMapping[];
  dns?: { servers: string[]; searches: string[]; options: string[] };
  bandwidth?: { ingressRate?: number; ingressBurst?: number; egressRate?: number; egressBurst?: number };
  /** More runtimeConfig capability values (ipRanges from kubelet's pod CIDR). */
  capabilityArgs?: Record<string, unknown>;
}

export type PodNetworkRef = Pick<PodNetworkRequest, 'sandboxId' | 'netnsPath' | 'name' | 'namespace' | 'uid'>;

export interface PodNetwork {
  /** CNI ADD through the configured network; the pod's IPs, IPv4 first. */
  add(pod: PodNetworkRequest, signal?: AbortSignal): Promise<{ ips: readonly { ip: string }[] }>;
  /** CNI DEL, idempotent (works from the cached ADD after a restart or a config change). */
  del(pod: PodNetworkRef, signal?: AbortSignal): Promise<void>;
  /** The pod's recorded attachment: present from a successful ADD until a successful DEL. */
  cached(sandboxId: string): Promise<unknown>;
}

const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

/** Burst with a rate, as containerd sets it: the largest 32-bit value (no burst limit). */
const BURST = 2 ** 32 - 1;

/** A Kubernetes quantity in bits per second ("10M", "1Gi", "500k") for a bandwidth annotation. */
export function bandwidthQuantity(value: string, annotation: string): number {
  const m = /^(\d+(?:\.\d+)?)(k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$/.exec(value.trim());
  const unit = UNITS[m?.[2] ?? ''];
  if (!m || unit === undefined || Number(m[1]) <= 0) {
    throw new InvalidArgumentError(
      `config.annotations[${JSON.stringify(annotation)}]`,
      `${JSON.stringify(value)} is not a bandwidth (bits per second, e.g. "10M" or "1Gi")`,
    );
  }
  return Math.round(Number(m[1]) * unit);
}

/** The bandwidth limits a pod's annotations ask for, or undefined for none. */
export function podBandwidth(annotations: Readonly<Record<string, string>>): PodNetworkRequest['bandwidth'] {
  const out: NonNullable<PodNetworkRequest['bandwidth']> = {};
  const ingress = annotations['kubernetes.io/ingress-bandwidth'];
  const egress = annotations['kubernetes.io/egress-bandwidth'];
  if (ingress !== undefined) {
    out.ingressRate = bandwidthQuantity(ingress, 'kubernetes.io/ingress-bandwidth');
    out.ingressBurst = BURST;
  }
  if (egress !== undefined) {
    out.egressRate = bandwidthQuantity(egress, 'kubernetes.io/egress-bandwidth');
    out.egressBurst = BURST;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}
