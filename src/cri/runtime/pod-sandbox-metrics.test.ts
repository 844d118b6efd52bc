import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type {
  ContainerStatsSample,
  NetworkInterfaceSample,
  PodStatsInput,
  PodStatsSample,
} from '../../container/stats.js';
import type { Metric } from '../../generated/runtime/v1/Metric.js';
import type { MetricDescriptor } from '../../generated/runtime/v1/MetricDescriptor.js';
import type { PodSandboxMetrics } from '../../generated/runtime/v1/PodSandboxMetrics.js';
import type { StreamPodSandboxMetricsResponse } from '../../generated/runtime/v1/StreamPodSandboxMetricsResponse.js';
import type { SandboxView } from '../../sandbox/manager.js';
import { StoreBatch } from '../../store/batch.js';
import { FakeStateStore } from '../../store/fake-state-store.js';
import { T0, containerConfig, sandboxConfig, testId } from '../../store/fixtures.js';
import type { StoredContainer } from '../../store/state-store.js';
import { STATS_PAGE_BYTES } from '../convert/stats.js';
import type { StreamScope } from '../handler.js';
import { loadCriProto } from '../proto.js';
import {
  STREAM_READ_PODS,
  listMetricDescriptors,
  listPodSandboxMetrics,
  streamPodSandboxMetrics,
  type MetricsReader,
} from './pod-sandbox-metrics.js';

const POD = testId('pod');
const POD_NOT_READY = testId('pod-notready');
const POD_HOSTNET = testId('pod-hostnet');
const INFRA = testId('infra');
const APP = testId('app');
const BARE = testId('bare');
const EXITED = testId('exited');
const IMAGE = 'docker.io/library/nginx:1.27';
const TS = 1_700_000_000_123_000_000n;

const scope = (): StreamScope => ({ signal: new AbortController().signal, drained: () => Promise.resolve() });

/** A pod with an infra container, two running application containers and an exited one. */
async function fixture(): Promise<{ views: SandboxView[]; containers: StoredContainer[] }> {
  const store = new FakeStateStore();
  const running = (pid: number) => ({ state: 'running' as const, updatedAt: T0, startedAt: T0, pid });
  await store.commit(
    new StoreBatch()
      .putSandboxConfig(sandboxConfig(POD))
      .putSandboxState(POD, { state: 'ready', updatedAt: T0 })
      .putContainerConfig({ ...containerConfig(INFRA, POD, 'POD'), kind: 'infra', logPath: '' })
      .putContainerState(INFRA, running(100))
      .putContainerConfig(containerConfig(APP, POD, 'nginx'))
      .putContainerState(APP, running(101))
      .putContainerConfig(containerConfig(BARE, POD, 'bare'))
      .putContainerState(BARE, running(102))
      .putContainerConfig(containerConfig(EXITED, POD, 'done'))
      .putContainerState(EXITED, { state: 'exited', updatedAt: T0, startedAt: T0, exitCode: 0 })
      .putSandboxConfig(sandboxConfig(POD_NOT_READY, 'gone'))
      .putSandboxState(POD_NOT_READY, { state: 'notready', updatedAt: T0 })
      .putSandboxConfig({
        ...sandboxConfig(POD_HOSTNET, 'host'),
        hostNetwork: true,
        cgroupParent: '/kubepods/x',
      })
      .putSandboxState(POD_HOSTNET, { state: 'ready', updatedAt: T0 }),
  );
  const sandbox = (id: string) => {
    const s = store.getSandbox(id);
    assert.ok(s);
    return s;
  };
  const infra = store.getContainer(INFRA);
  return {
    views: [
      { sandbox: sandbox(POD), ready: true, infra },
      { sandbox: sandbox(POD_NOT_READY), ready: false, infra: undefined },
      { sandbox: sandbox(POD_HOSTNET), ready: true, infra: undefined },
    ],
    containers: store.listContainers(),
  };
}

const iface = (name: string, n: bigint): NetworkInterfaceSample => ({
  name,
  rxBytes: n,
  rxErrors: 1n,
  txBytes: n + 1n,
  txErrors: 2n,
});

function containerSample(c: StoredContainer): ContainerStatsSample {
  if (c.config.id === BARE) {
    return {
      cpu: undefined,
      memory: undefined,
      swap: undefined,
      writableLayer: undefined,
      process: undefined,
    };
  }
  return {
    cpu: { timestampNs: TS, usageCoreNs: 7_999_999_999n, usageNanoCores: 5n },
    memory: {
      timestampNs: TS,
      workingSetBytes: 3000n,
      usageBytes: 4000n,
      rssBytes: undefined,
      availableBytes: undefined,
      pageFaults: 50n,
      majorPageFaults: 2n,
    },
    swap: { timestampNs: TS, usageBytes: 64n, availableBytes: undefined },
    writableLayer: undefined,
    process: { timestampNs: TS, count: 1n },
  };
}

/** Answers from the input, and remembers what it was asked. */
function fakeReader(podSample?: (input: PodStatsInput) => Partial<PodStatsSample>): MetricsReader & {
  inputs: PodStatsInput[];
} {
  const inputs: PodStatsInput[] = [];
  return {
    inputs,
    readPodStats: (input) => {
      inputs.push(input);
      return Promise.resolve({
        cpu: { timestampNs: TS, usageCoreNs: 12_500_000_000n, usageNanoCores: undefined },
        memory: {
          timestampNs: TS,
          workingSetBytes: 9000n,
          usageBytes: 10_000n,
          rssBytes: 8000n,
          availableBytes: undefined,
          pageFaults: 500n,
          majorPageFaults: 20n,
        },
        network: input.hostNetwork
          ? undefined
          : {
              timestampNs: TS,
              defaultInterface: iface('eth0', 1000n),
              interfaces: [iface('lo', 10n), iface('eth0', 1000n)],
            },
        process: { timestampNs: TS, count: 3n },
        containers: input.containers.map((container) => ({ container, stats: containerSample(container) })),
        ...podSample?.(input),
      });
    },
  };
}

const list = (views: SandboxView[], containers: StoredContainer[], reader: MetricsReader) =>
  listPodSandboxMetrics({ list: () => views }, { list: () => containers }, reader)({}, scope());

/** name + labels → value, for one pod's or container's metrics. */
function byKey(metrics: readonly Metric[]): Map<string, Metric> {
  const out = new Map<string, Metric>();
  for (const m of metrics) {
    const key = `${m.name ?? ''}{${(m.label_values ?? []).join(',')}}`;
    assert.ok(!out.has(key), `one series per name and labels: ${key}`);
    out.set(key, m);
  }
  return out;
}

function value(metrics: Map<string, Metric>, key: string): string {
  const m = metrics.get(key);
  assert.ok(m, `${key} is reported; got ${[...metrics.keys()].join(' ')}`);
  return m.value?.value?.toString() ?? '';
}

describe('ListMetricDescriptors', () => {
  it('describes cAdvisor’s metrics with the CRI-O / containerd label keys', async () => {
    const { descriptors = [] } = await listMetricDescriptors()({}, scope());
    const base = ['id', 'image', 'namespace', 'pod', 'container'];
    const keys = new Map(descriptors.map((d) => [d.name, d.label_keys]));
    assert.equal(keys.size, descriptors.length, 'names are unique');
    assert.deepEqual(
      new Map([...keys].sort()),
      new Map([
        ['container_cpu_usage_seconds_total', [...base, 'cpu']],
        ['container_memory_failures_total', [...base, 'failure_type', 'scope']],
        ['container_memory_rss', base],
        ['container_memory_swap', base],
        ['container_memory_usage_bytes', base],
        ['container_memory_working_set_bytes', base],
        ['container_network_receive_bytes_total', [...base, 'interface']],
        ['container_network_receive_errors_total', [...base, 'interface']],
        ['container_network_transmit_bytes_total', [...base, 'interface']],
        ['container_network_transmit_errors_total', [...base, 'interface']],
        ['container_processes', base],
      ]),
    );
    for (const d of descriptors) assert.ok((d.help ?? '').length > 10, `${d.name ?? ''} has a help text`);
  });
});

describe('ListPodSandboxMetrics', () => {
  let descriptors: Map<string, MetricDescriptor>;
  before(async () => {
    const res = await listMetricDescriptors()({}, scope());
    descriptors = new Map((res.descriptors ?? []).map((d) => [d.name ?? '', d]));
  });

  /** What kubelet checks: a descriptor for every name, one value per label key, a known type. */
  function assertWellFormed(pods: readonly PodSandboxMetrics[]): void {
    const all = pods.flatMap((p) => [
      ...(p.metrics ?? []),
      ...(p.container_metrics ?? []).flatMap((c) => c.metrics ?? []),
    ]);
    assert.ok(all.length > 0);
    for (const m of all) {
      const d = descriptors.get(m.name ?? '');
      assert.ok(d, `${m.name ?? ''} is described`);
      assert.equal(m.label_values?.length, d.label_keys?.length, `${m.name ?? ''}: one value per label key`);
      assert.equal(m.metric_type, (m.name ?? '').endsWith('_total') ? 'COUNTER' : 'GAUGE', m.name);
      assert.match(String(m.value?.value), /^\d+$/);
    }
  }

  it('reports ready pods only, reading their running application containers', async () => {
    const { views, containers } = await fixture();
    const reader = fakeReader();
    const { pod_metrics = [] } = await list(views, containers, reader);
    assert.deepEqual(
      pod_metrics.map((p) => p.pod_sandbox_id),
      [POD, POD_HOSTNET],
    );
    const input = reader.inputs.find((i) => i.sandboxId === POD);
    assert.ok(input);
    assert.deepEqual(input.containers.map((c) => c.config.id).sort(), [APP, BARE].sort());
    assert.equal(input.infra?.config.id, INFRA);
    assert.equal(input.hostNetwork, false);
    const host = reader.inputs.find((i) => i.sandboxId === POD_HOSTNET);
    assert.deepEqual([host?.hostNetwork, host?.cgroupParent, host?.containers], [true, '/kubepods/x', []]);
    assertWellFormed(pod_metrics);
  });

  it('labels pod totals and network with the pod id and empty image and container', async () => {
    const { views, containers } = await fixture();
    const { pod_metrics = [] } = await list(views, containers, fakeReader());
    const pod = pod_metrics.find((p) => p.pod_sandbox_id === POD);
    assert.ok(pod);
    const m = byKey(pod.metrics ?? []);
    const labels = `${POD},,default,web,`;
    assert.equal(
      value(m, `container_cpu_usage_seconds_total{${labels},total}`),
      '12',
      'whole seconds, truncated',
    );
    assert.equal(value(m, `container_memory_usage_bytes{${labels}}`), '10000');
    assert.equal(value(m, `container_memory_working_set_bytes{${labels}}`), '9000');
    assert.equal(value(m, `container_memory_rss{${labels}}`), '8000');
    assert.equal(value(m, `container_memory_failures_total{${labels},pgfault,hierarchy}`), '500');
    assert.equal(value(m, `container_memory_failures_total{${labels},pgmajfault,hierarchy}`), '20');
    assert.ok(
      !m.has(`container_memory_failures_total{${labels},pgfault,container}`),
      'a pod cgroup’s own faults are not read: no container scope',
    );
    assert.equal(value(m, `container_processes{${labels}}`), '3');
    for (const [name, rx] of [
      ['lo', 10n],
      ['eth0', 1000n],
    ] as const) {
      assert.equal(value(m, `container_network_receive_bytes_total{${labels},${name}}`), String(rx));
      assert.equal(value(m, `container_network_transmit_bytes_total{${labels},${name}}`), String(rx + 1n));
      assert.equal(value(m, `container_network_receive_errors_total{${labels},${name}}`), '1');
      assert.equal(value(m, `container_network_transmit_errors_total{${labels},${name}}`), '2');
    }
    assert.equal(m.size, 15, 'cpu, 3 memory, 2 faults, processes, 4 × 2 interfaces');
    for (const metric of m.values()) assert.equal(metric.timestamp, TS.toString());

    const host = pod_metrics.find((p) => p.pod_sandbox_id === POD_HOSTNET);
    assert.ok(host);
    assert.ok(
      !(host.metrics ?? []).some((x) => (x.name ?? '').startsWith('container_network_')),
      'a host-network pod has no network of its own',
    );
    assert.deepEqual(host.container_metrics, []);
  });

  it('labels a container’s metrics with its id, image, pod and name, and leaves out what was not read', async () => {
    const { views, containers } = await fixture();
    const { pod_metrics = [] } = await list(views, containers, fakeReader());
    const pod = pod_metrics.find((p) => p.pod_sandbox_id === POD);
    const app = pod?.container_metrics?.find((c) => c.container_id === APP);
    assert.ok(app);
    const m = byKey(app.metrics ?? []);
    const labels = `${APP},${IMAGE},default,web,nginx`;
    assert.equal(value(m, `container_cpu_usage_seconds_total{${labels},total}`), '7');
    assert.equal(value(m, `container_memory_usage_bytes{${labels}}`), '4000');
    assert.equal(value(m, `container_memory_working_set_bytes{${labels}}`), '3000');
    assert.equal(value(m, `container_memory_swap{${labels}}`), '64');
    for (const scope of ['container', 'hierarchy']) {
      assert.equal(value(m, `container_memory_failures_total{${labels},pgfault,${scope}}`), '50');
      assert.equal(value(m, `container_memory_failures_total{${labels},pgmajfault,${scope}}`), '2');
    }
    assert.equal(value(m, `container_processes{${labels}}`), '1');
    assert.ok(!m.has(`container_memory_rss{${labels}}`), 'rss was not read: not reported as 0');
    assert.equal(m.size, 9);
    assert.ok(![...m.keys()].some((k) => k.startsWith('container_network_')), 'network is the pod’s');

    const bare = pod?.container_metrics?.find((c) => c.container_id === BARE);
    assert.deepEqual(bare?.metrics, [], 'listed, with nothing it could not read');
  });
});

// --- the stream ------------------------------------------------------------------------------

interface ManyPods {
  views: SandboxView[];
  containers: StoredContainer[];
}

/** `pods` copies of the fixture's ready pod, each with `perPod` running containers. */
async function manyPods(pods: number, perPod: number): Promise<ManyPods> {
  const { views, containers } = await fixture();
  const [view] = views;
  const app = containers.find((c) => c.config.id === APP);
  assert.ok(view && app);
  const out: ManyPods = { views: [], containers: [] };
  for (let p = 0; p < pods; p++) {
    const id = testId(`p${p}`);
    const name = `pod-${p}-${'n'.repeat(40)}`;
    out.views.push({ ...view, sandbox: { ...view.sandbox, config: { ...view.sandbox.config, id, name } } });
    for (let c = 0; c < perPod; c++) {
      out.containers.push({
        ...app,
        config: {
          ...app.config,
          id: testId(`p${p}c${c}`),
          sandboxId: id,
          name: `container-${c}`,
          image: `registry.example.com/${'team/'.repeat(20)}app-${c}:v1`,
        },
      });
    }
  }
  return out;
}

function streamOf(pods: ManyPods, reader: MetricsReader) {
  return streamPodSandboxMetrics({ list: () => pods.views }, { list: () => pods.containers }, reader);
}

/** Entries with the same pod id merged back together. */
function merged(
  messages: readonly StreamPodSandboxMetricsResponse[],
): Map<string, { metrics: number; containers: string[] }> {
  const out = new Map<string, { metrics: number; containers: string[] }>();
  for (const p of messages.flatMap((m) => m.pod_sandbox_metrics ?? [])) {
    const e = out.get(p.pod_sandbox_id ?? '') ?? { metrics: 0, containers: [] };
    e.metrics += p.metrics?.length ?? 0;
    e.containers.push(...(p.container_metrics ?? []).map((c) => c.container_id ?? ''));
    out.set(p.pod_sandbox_id ?? '', e);
  }
  return out;
}

describe('StreamPodSandboxMetrics', () => {
  let encode: (msg: StreamPodSandboxMetricsResponse) => Buffer;
  before(async () => {
    const proto = await loadCriProto();
    encode = (msg) => proto.runtime.v1.RuntimeService.service.StreamPodSandboxMetrics.responseSerialize(msg);
  });

  it('sends one empty message when no pod is ready', async () => {
    const sent: StreamPodSandboxMetricsResponse[] = [];
    const impl = streamPodSandboxMetrics({ list: () => [] }, { list: () => [] }, fakeReader());
    await impl({}, (m) => sent.push(m) > 0, scope());
    assert.deepEqual(sent, [{ pod_sandbox_metrics: [] }]);
  });

  it('sends thousands of pods in messages well under 16 MiB, the first before the last pod is read', async () => {
    const pods = await manyPods(3000, 6);
    const reader = fakeReader();
    const sent: StreamPodSandboxMetricsResponse[] = [];
    const readBeforeFirstSend: number[] = [];
    await streamOf(pods, reader)(
      {},
      (m) => {
        if (sent.length === 0) readBeforeFirstSend.push(reader.inputs.length);
        sent.push(m);
        return true;
      },
      scope(),
    );
    assert.ok(sent.length > 1, `several messages: ${sent.length}`);
    assert.ok((readBeforeFirstSend[0] ?? Infinity) <= STREAM_READ_PODS, 'sends as it reads');
    let total = 0;
    for (const m of sent) {
      const bytes = encode(m).length;
      total += bytes;
      assert.ok(bytes <= STATS_PAGE_BYTES, `message of ${bytes} bytes ≤ ${STATS_PAGE_BYTES}`);
    }
    assert.ok(total > 16 * 1024 * 1024, `the whole answer (${total} bytes) would not fit one message`);
    const got = merged(sent);
    assert.equal(got.size, 3000, 'every pod once');
    assert.ok([...got.values()].every((p) => p.metrics === 15 && p.containers.length === 6));
  });

  it('splits a pod too big for one message into entries with the same id', async () => {
    const { views, containers } = await fixture();
    const interfaces = Array.from({ length: 20_000 }, (_, i) => iface(`veth${i}`, BigInt(i)));
    const reader = fakeReader(() => ({
      network: { timestampNs: TS, defaultInterface: iface('eth0', 0n), interfaces },
    }));
    const listed = (await list(views, containers, reader)).pod_metrics?.find((p) => p.pod_sandbox_id === POD);
    assert.equal(listed?.metrics?.length, 7 + 4 * 20_000);

    const sent: StreamPodSandboxMetricsResponse[] = [];
    const impl = streamPodSandboxMetrics({ list: () => views }, { list: () => containers }, reader);
    await impl({}, (m) => sent.push(m) > 0, scope());
    const entries = sent.flatMap((m) => m.pod_sandbox_metrics ?? []).filter((p) => p.pod_sandbox_id === POD);
    assert.ok(entries.length > 1, `split into ${entries.length} entries`);
    for (const m of sent) assert.ok(encode(m).length <= STATS_PAGE_BYTES);
    assert.deepEqual(
      entries.flatMap((p) => p.metrics ?? []),
      listed.metrics,
      'the same metrics, in order',
    );
    assert.deepEqual(
      entries.flatMap((p) => (p.container_metrics ?? []).map((c) => c.container_id)),
      listed.container_metrics?.map((c) => c.container_id),
    );
  });

  it('stops reading when the client cancels, and waits for a full buffer to drain', async () => {
    const pods = await manyPods(5 * STREAM_READ_PODS, 1);
    const controller = new AbortController();
    let drains = 0;
    const reader = fakeReader();
    const sent: StreamPodSandboxMetricsResponse[] = [];
    await streamOf(pods, reader)(
      {},
      (m) => {
        sent.push(m);
        return false; // always full
      },
      {
        signal: controller.signal,
        drained: () => {
          drains++;
          if (drains === 2) controller.abort(new Error('client went away'));
          return Promise.resolve();
        },
      },
    );
    assert.equal(drains, 2, 'waited after each message');
    assert.equal(sent.length, 2);
    assert.ok(reader.inputs.length <= 2 * STREAM_READ_PODS, `read ${reader.inputs.length} pods, not all`);
  });
});
