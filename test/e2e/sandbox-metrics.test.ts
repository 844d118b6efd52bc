/**
 * ListMetricDescriptors, ListPodSandboxMetrics and StreamPodSandboxMetrics against real runc
 * containers: cAdvisor's metric names with their label keys, every metric matching its
 * descriptor (what kubelet needs to serve them), a busy container's CPU seconds growing, memory,
 * processes and the pod namespace's network counters, checked against the kernel's own files
 * read by the test before and after each call.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Metric__Output } from '../../src/generated/runtime/v1/Metric.js';
import type { MetricDescriptor__Output } from '../../src/generated/runtime/v1/MetricDescriptor.js';
import type { PodSandboxMetrics__Output } from '../../src/generated/runtime/v1/PodSandboxMetrics.js';
import {
  createAndStart,
  collect,
  containerPid as pidOf,
  infraPid as infraPidOf,
  type CriClients,
} from './harness/cri-client.js';
import { netDev, until } from './harness/host.js';
import { cgroupDir, kernelCpuNs } from './harness/cgroups.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

const NAMESPACE = 'e2e-metrics';
const BASE_KEYS = ['id', 'image', 'namespace', 'pod', 'container'];

/** The one metric with this name whose label values end with `extra`. */
function metric(metrics: readonly Metric__Output[], name: string, ...extra: string[]): Metric__Output {
  const found = metrics.filter(
    (m) =>
      m.name === name &&
      extra.every((v, i) => m.label_values[m.label_values.length - extra.length + i] === v),
  );
  assert.equal(found.length, 1, `one ${name}{…${extra.join(',')}}; got ${found.length}`);
  const [m] = found;
  assert.ok(m);
  return m;
}

function value(metrics: readonly Metric__Output[], name: string, ...extra: string[]): bigint {
  const v = metric(metrics, name, ...extra).value;
  assert.ok(v, `${name} has a value`);
  return BigInt(v.value);
}

describe('sandbox metrics: cAdvisor-named metrics of pods and containers over CRI', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let image: string;
  let logDir: string;
  let descriptors: Map<string, MetricDescriptor__Output>;

  interface Pod {
    id: string;
    config: ReturnType<typeof podConfig>;
  }
  const podConfig = (name: string) => ({
    metadata: { name, namespace: NAMESPACE, uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: join(logDir, name),
    labels: { app: name },
    annotations: {},
  });

  let pod: Pod;
  let other: Pod;
  let busy: string;
  let idle: string;
  let sleeper: string;

  async function runPod(name: string): Promise<Pod> {
    const config = podConfig(name);
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    return { id: pod_sandbox_id, config };
  }

  async function runContainer(p: Pod, name: string, command: string[]): Promise<string> {
    return createAndStart(cri, p, {
      metadata: { name, attempt: 0 },
      image: { image },
      command,
      log_path: `${name}.log`,
    });
  }

  const containerPid = (id: string): Promise<number> => pidOf(cri, id);
  const infraPid = (podId: string): Promise<number> => infraPidOf(cri, podId);

  /** rx bytes per interface of a process's network namespace. */
  const netDevRx = async (pid: number) => new Map([...(await netDev(pid))].map(([k, v]) => [k, v.rx]));

  const listAll = async (): Promise<PodSandboxMetrics__Output[]> =>
    (await cri.runtime.ListPodSandboxMetrics({})).pod_metrics;
  const podMetrics = async (id: string): Promise<PodSandboxMetrics__Output> => {
    const p = (await listAll()).find((m) => m.pod_sandbox_id === id);
    assert.ok(p, `pod ${id} is listed`);
    return p;
  };
  const containerMetrics = (p: PodSandboxMetrics__Output, id: string): Metric__Output[] => {
    const c = p.container_metrics.find((m) => m.container_id === id);
    assert.ok(c, `container ${id} is listed`);
    return c.metrics;
  };

  before(async () => {
    setup = await startWithBusybox();
    ({ cri, image } = setup);
    logDir = join(setup.dirs.base, 'logs');
    descriptors = new Map((await cri.runtime.ListMetricDescriptors({})).descriptors.map((d) => [d.name, d]));
    pod = await runPod('metrics');
    busy = await runContainer(pod, 'busy', ['sh', '-c', 'while true; do :; done']);
    idle = await runContainer(pod, 'idle', ['sleep', '3600']);
    const done = await runContainer(pod, 'done', ['true']);
    other = await runPod('other');
    sleeper = await runContainer(other, 'sleeper', ['sleep', '3600']);
    await until('the "done" container to exit', async () => {
      const s = (await cri.runtime.ContainerStatus({ container_id: done })).status;
      return s?.state === 'CONTAINER_EXITED' ? true : undefined;
    });
  });

  after(async () => {
    await setup.teardown();
  });

  it('ListMetricDescriptors: cAdvisor’s names, with the id/image/namespace/pod/container label keys', () => {
    const keys = (name: string): string[] => {
      const d = descriptors.get(name);
      assert.ok(d, `${name} is described`);
      assert.ok(d.help.length > 0, `${name} has a help text`);
      return d.label_keys;
    };
    assert.deepEqual(keys('container_cpu_usage_seconds_total'), [...BASE_KEYS, 'cpu']);
    for (const name of [
      'container_memory_usage_bytes',
      'container_memory_working_set_bytes',
      'container_memory_rss',
      'container_memory_swap',
      'container_processes',
    ]) {
      assert.deepEqual(keys(name), BASE_KEYS, name);
    }
    assert.deepEqual(keys('container_memory_failures_total'), [...BASE_KEYS, 'failure_type', 'scope']);
    for (const name of [
      'container_network_receive_bytes_total',
      'container_network_transmit_bytes_total',
      'container_network_receive_errors_total',
      'container_network_transmit_errors_total',
    ]) {
      assert.deepEqual(keys(name), [...BASE_KEYS, 'interface'], name);
    }
    for (const d of descriptors.values()) {
      assert.match(d.name, /^container_[a-z_]+$/);
      assert.deepEqual(d.label_keys.slice(0, BASE_KEYS.length), BASE_KEYS, d.name);
    }
  });

  it('ListPodSandboxMetrics: ready pods, their running containers, every metric as its descriptor says', async () => {
    const all = await listAll();
    assert.deepEqual(all.map((p) => p.pod_sandbox_id).sort(), [pod.id, other.id].sort());
    const mine = all.find((p) => p.pod_sandbox_id === pod.id);
    assert.ok(mine);
    assert.deepEqual(
      mine.container_metrics.map((c) => c.container_id).sort(),
      [busy, idle].sort(),
      'the running application containers (not the exited one, not the infra container)',
    );
    let checked = 0;
    for (const p of all) {
      for (const m of [...p.metrics, ...p.container_metrics.flatMap((c) => c.metrics)]) {
        const d = descriptors.get(m.name);
        assert.ok(d, `${m.name} is described`);
        assert.equal(m.label_values.length, d.label_keys.length, `${m.name}: one value per label key`);
        assert.equal(m.metric_type, m.name.endsWith('_total') ? 'COUNTER' : 'GAUGE', m.name);
        assert.ok(BigInt(m.timestamp) > 1_600_000_000_000_000_000n, `${m.name} has a timestamp in ns`);
        assert.ok(m.value, `${m.name} has a value`);
        checked++;
      }
    }
    assert.ok(checked > 20, `${checked} metrics`);

    // Container metrics: the container's id, image and name, its pod's namespace and name.
    const ws = metric(containerMetrics(mine, busy), 'container_memory_working_set_bytes');
    assert.deepEqual(ws.label_values, [busy, image, NAMESPACE, 'metrics', 'busy']);
    // Pod totals and network: the pod id, image and container empty (as cAdvisor's pod cgroup).
    const podWs = metric(mine.metrics, 'container_memory_working_set_bytes');
    assert.deepEqual(podWs.label_values, [pod.id, '', NAMESPACE, 'metrics', '']);
  });

  it('container_cpu_usage_seconds_total of a busy container grows between two calls, as the kernel counts', async () => {
    const dir = await cgroupDir(await containerPid(busy), 'cpuacct');
    const k0 = await kernelCpuNs(dir);
    const v0 = value(
      containerMetrics(await podMetrics(pod.id), busy),
      'container_cpu_usage_seconds_total',
      'total',
    );
    const k1 = await kernelCpuNs(dir);
    const second = 1_000_000_000n;
    assert.ok(k0 / second <= v0 && v0 <= k1 / second, `${v0} s lies between the kernel's ${k0} and ${k1} ns`);

    // Whole seconds: a shell loop burning a core adds one within a second or two.
    const v1 = await until(
      'the busy container’s CPU seconds to grow',
      async () => {
        const v = value(
          containerMetrics(await podMetrics(pod.id), busy),
          'container_cpu_usage_seconds_total',
          'total',
        );
        return v > v0 ? v : undefined;
      },
      30_000,
    );
    assert.ok(v1 > v0, `CPU seconds grow: ${v0} → ${v1}`);

    // The pod's total (no cgroup parent: its containers' sum) is at least the busy one's.
    const p = await podMetrics(pod.id);
    assert.ok(value(p.metrics, 'container_cpu_usage_seconds_total', 'total') >= v1);
  });

  it('memory: a working set > 0 for the containers and the pod, within usage; page faults counted', async () => {
    const p = await podMetrics(pod.id);
    for (const [what, metrics] of [
      ['busy', containerMetrics(p, busy)],
      ['idle', containerMetrics(p, idle)],
      ['pod', p.metrics],
    ] as const) {
      const ws = value(metrics, 'container_memory_working_set_bytes');
      assert.ok(ws > 0n, `${what}: working set ${ws} > 0`);
      assert.ok(value(metrics, 'container_memory_usage_bytes') >= ws, `${what}: usage ≥ working set`);
      assert.ok(value(metrics, 'container_memory_rss') > 0n, `${what}: rss > 0`);
      assert.ok(value(metrics, 'container_memory_failures_total', 'pgfault', 'hierarchy') > 0n, what);
    }
    const busyMetrics = containerMetrics(p, busy);
    assert.equal(
      value(busyMetrics, 'container_memory_failures_total', 'pgfault', 'container'),
      value(busyMetrics, 'container_memory_failures_total', 'pgfault', 'hierarchy'),
      'a container’s cgroup is a leaf: both scopes agree',
    );
  });

  it('container_processes: pause, the busy shell and sleep', async () => {
    const p = await podMetrics(pod.id);
    assert.equal(value(p.metrics, 'container_processes'), 3n);
    assert.equal(value(containerMetrics(p, busy), 'container_processes'), 1n);
    assert.equal(value(containerMetrics(p, idle), 'container_processes'), 1n);
  });

  it('network: the pod namespace’s interfaces, receive bytes as the kernel counts them', async () => {
    const ipid = await infraPid(pod.id);
    // Loopback traffic in the pod's namespace: a refused connection is a SYN and a RST on lo.
    const before0 = await netDevRx(ipid);
    await cri.runtime.ExecSync(
      { container_id: idle, cmd: ['sh', '-c', 'nc -w 1 127.0.0.1 9 </dev/null || true'], timeout: 10 },
      30_000,
    );
    const mid = await netDevRx(ipid);
    const p = await podMetrics(pod.id);
    const after1 = await netDevRx(ipid);
    const lo0 = before0.get('lo');
    const loMid = mid.get('lo');
    const lo1 = after1.get('lo');
    assert.ok(lo0 !== undefined && loMid !== undefined && lo1 !== undefined, 'the pod namespace has lo');
    assert.ok(loMid > lo0, 'the connection attempt went over lo');
    const rx = value(p.metrics, 'container_network_receive_bytes_total', 'lo');
    assert.ok(loMid <= rx && rx <= lo1, `lo receive bytes ${rx} are the namespace's (${loMid} … ${lo1})`);
    const rxMetric = metric(p.metrics, 'container_network_receive_bytes_total', 'lo');
    assert.deepEqual(rxMetric.label_values, [pod.id, '', NAMESPACE, 'metrics', '', 'lo']);
    assert.equal(rxMetric.metric_type, 'COUNTER');
    for (const name of after1.keys()) {
      value(p.metrics, 'container_network_receive_bytes_total', name);
      value(p.metrics, 'container_network_transmit_bytes_total', name);
      value(p.metrics, 'container_network_receive_errors_total', name);
      value(p.metrics, 'container_network_transmit_errors_total', name);
    }
    assert.ok(
      !p.container_metrics.some((c) => c.metrics.some((m) => m.name.startsWith('container_network_'))),
      'network is reported once, for the pod',
    );
  });

  it('StreamPodSandboxMetrics: the same pods and containers as the list', async () => {
    const messages = await collect(cri.raw.runtime.StreamPodSandboxMetrics({}));
    assert.ok(messages.length >= 1);
    const shape = (entries: readonly PodSandboxMetrics__Output[]): Map<string, string[]> => {
      const out = new Map<string, string[]>();
      for (const e of entries) {
        const names = [
          ...e.metrics.map((m) => `${m.name}{${m.label_values.join(',')}}`),
          ...e.container_metrics.flatMap((c) =>
            c.metrics.map((m) => `${c.container_id}/${m.name}{${m.label_values.join(',')}}`),
          ),
        ];
        out.set(e.pod_sandbox_id, [...(out.get(e.pod_sandbox_id) ?? []), ...names].sort());
      }
      return out;
    };
    const streamed = shape(messages.flatMap((m) => m.pod_sandbox_metrics));
    const listed = shape(await listAll());
    assert.deepEqual([...streamed.keys()].sort(), [pod.id, other.id].sort());
    assert.deepEqual(streamed, listed, 'the same series for every pod');
    assert.ok(
      streamed.get(other.id)?.some((s) => s.startsWith(`${sleeper}/container_cpu_usage_seconds_total`)),
    );
  });

  it('a pod that is not ready is left out of both', async () => {
    const gone = await runPod('stopped');
    await cri.runtime.StopPodSandbox({ pod_sandbox_id: gone.id }, 60_000);
    assert.ok(!(await listAll()).some((p) => p.pod_sandbox_id === gone.id));
    const messages = await collect(cri.raw.runtime.StreamPodSandboxMetrics({}));
    assert.ok(!messages.some((m) => m.pod_sandbox_metrics.some((p) => p.pod_sandbox_id === gone.id)));
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: gone.id }, 60_000);
  });
});
