/**
 * Fuzzing every RPC of the real daemon: thousands of valid requests, each mutated at random
 * (fields dropped, strings made huge or filled with control characters, NUL, invalid UTF-8 and
 * "../", numbers made negative or absurd, lists and maps repeated thousands of times, ids swapped,
 * cut or invented, and some encoded requests with flipped bytes), sent with bounded concurrency
 * and a deadline each. Afterwards the daemon must still run and answer, its lists must agree
 * with its /debug/state, no server fault (INTERNAL from crisp, a fatal log line) may have
 * happened, and removing every pod must leave no mount behind.
 *
 * The seed is printed; CRISP_FUZZ_SEED replays a run and CRISP_FUZZ_REQUESTS changes its size.
 * Network: PullImage only ever reaches the test's registry on 127.0.0.1 — a mutated reference
 * that would name any other host is not sent.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Metadata, status as GrpcCode, type Client, type ServiceError } from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/proto-loader';
import { parseReference } from '../../src/image/reference.js';
import { loadCriProto } from '../../src/cri/proto.js';
import type { ContainerConfig } from '../../src/generated/runtime/v1/ContainerConfig.js';
import type { PodSandboxConfig } from '../../src/generated/runtime/v1/PodSandboxConfig.js';
import { createAndStart, type CriClients } from './harness/cri-client.js';
import type { RunningCrisp, TestDirs } from './harness/daemon.js';
import { mountsUnder } from './harness/host.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

const SEED = Number(process.env.CRISP_FUZZ_SEED ?? randomInt(2 ** 31));
const REQUESTS = Number(process.env.CRISP_FUZZ_REQUESTS ?? 3000);
/** Requests between two resets of the fixture (all pods removed, a fresh one made). */
const ROUND = 500;
const CONCURRENCY = 8;
const DEADLINE_MS = 20_000;
/** GetContainerEvents never ends by itself: how long each such call listens. */
const STREAM_LISTEN_MS = 300;

/** mulberry32: small, seedable, good enough to pick mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = null | boolean | number | string | Buffer | Json[] | { [key: string]: Json };
type Obj = Record<string, Json>;

describe('fuzzing every RPC', () => {
  let setup: BusyboxSetup;
  let crisp: RunningCrisp;
  let dirs: TestDirs;
  let cri: CriClients;
  let image: string;
  let registryHost: string;
  const rand = prng(SEED);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)] as T;

  /** The objects the base requests name; remade each round. */
  const fixture = { pod: '', ctr: '', round: 0, podConfig: {} as PodSandboxConfig };

  const podConfig = (name: string): PodSandboxConfig => ({
    metadata: { name, namespace: 'fuzz', uid: `uid-${name}`, attempt: 0 },
    hostname: name,
    log_directory: join(dirs.base, 'logs', name),
    dns_config: { servers: ['10.0.0.10'], searches: ['fuzz.svc'], options: ['ndots:2'] },
    port_mappings: [{ protocol: 'TCP', container_port: 80, host_port: 0, host_ip: '' }],
    labels: { app: name, tier: 'fuzz' },
    annotations: { 'fuzz/round': String(fixture.round) },
    linux: {
      cgroup_parent: '',
      sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0' },
      security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } },
    },
  });
  const ctrConfig = (name: string): ContainerConfig => ({
    metadata: { name, attempt: 0 },
    image: { image },
    command: ['sleep', '1000'],
    args: [],
    working_dir: '/tmp',
    envs: [{ key: 'FUZZ', value: Buffer.from('1') }],
    labels: { ctr: name },
    annotations: { 'fuzz/ctr': name },
    log_path: `${name}.log`,
    stop_signal: 'SIGTERM',
    linux: {
      resources: {
        cpu_shares: '256',
        cpu_period: '100000',
        cpu_quota: '50000',
        memory_limit_in_bytes: String(64 * 1024 * 1024),
        oom_score_adj: '100',
      },
      security_context: { run_as_user: { value: '0' }, namespace_options: { pid: 'CONTAINER' } },
    },
  });
  const resources = (): Obj => ({
    cpu_shares: '512',
    cpu_period: '100000',
    cpu_quota: '50000',
    memory_limit_in_bytes: String(128 * 1024 * 1024),
    oom_score_adj: '0',
    cpuset_cpus: '0',
    hugepage_limits: [],
    unified: {},
  });

  /** A valid request for each method, naming the current fixture. */
  function baseRequest(method: string): Obj {
    const pod = fixture.pod;
    const ctr = fixture.ctr;
    const r = fixture.round;
    const statsFilter = { id: '', pod_sandbox_id: pod, label_selector: { ctr: 'c' } };
    const table: Record<string, () => Obj> = {
      Version: () => ({ version: 'v1' }),
      RunPodSandbox: () => ({ config: podConfig(`fz-${r}`) as Obj, runtime_handler: '' }),
      StopPodSandbox: () => ({ pod_sandbox_id: pod }),
      RemovePodSandbox: () => ({ pod_sandbox_id: pod }),
      PodSandboxStatus: () => ({ pod_sandbox_id: pod, verbose: true }),
      ListPodSandbox: () => ({
        filter: { id: '', state: { state: 'SANDBOX_READY' }, label_selector: { tier: 'fuzz' } },
      }),
      StreamPodSandboxes: () => ({ filter: { id: pod, label_selector: {} } }),
      CreateContainer: () => ({
        pod_sandbox_id: pod,
        config: ctrConfig(`fc-${r}`) as Obj,
        sandbox_config: fixture.podConfig as Obj,
      }),
      StartContainer: () => ({ container_id: ctr }),
      StopContainer: () => ({ container_id: ctr, timeout: '2' }),
      RemoveContainer: () => ({ container_id: ctr }),
      ListContainers: () => ({
        filter: { id: '', state: { state: 'CONTAINER_RUNNING' }, pod_sandbox_id: pod, label_selector: {} },
      }),
      StreamContainers: () => ({ filter: { id: ctr.slice(0, 12), pod_sandbox_id: '', label_selector: {} } }),
      ContainerStatus: () => ({ container_id: ctr, verbose: true }),
      UpdateContainerResources: () => ({ container_id: ctr, linux: resources(), annotations: { a: 'b' } }),
      ReopenContainerLog: () => ({ container_id: ctr }),
      ExecSync: () => ({ container_id: ctr, cmd: ['true'], timeout: '5' }),
      Exec: () => ({
        container_id: ctr,
        cmd: ['sh', '-c', 'echo'],
        tty: false,
        stdin: false,
        stdout: true,
        stderr: true,
      }),
      Attach: () => ({ container_id: ctr, tty: false, stdin: false, stdout: true, stderr: true }),
      PortForward: () => ({ pod_sandbox_id: pod, port: [80, 8080] }),
      ContainerStats: () => ({ container_id: ctr }),
      ListContainerStats: () => ({ filter: statsFilter }),
      StreamContainerStats: () => ({ filter: statsFilter }),
      PodSandboxStats: () => ({ pod_sandbox_id: pod }),
      ListPodSandboxStats: () => ({ filter: { id: pod, label_selector: {} } }),
      StreamPodSandboxStats: () => ({ filter: { id: '', label_selector: { app: `fz-${r}` } } }),
      UpdateRuntimeConfig: () => ({ runtime_config: { network_config: { pod_cidr: '10.85.0.0/16' } } }),
      Status: () => ({ verbose: true }),
      RuntimeConfig: () => ({}),
      CheckpointContainer: () => ({
        container_id: ctr,
        location: join(dirs.base, 'ckpt.tar'),
        timeout: '10',
      }),
      GetContainerEvents: () => ({}),
      ListMetricDescriptors: () => ({}),
      ListPodSandboxMetrics: () => ({}),
      StreamPodSandboxMetrics: () => ({}),
      UpdatePodSandboxResources: () => ({
        pod_sandbox_id: pod,
        overhead: resources(),
        resources: resources(),
      }),
      ListImages: () => ({ filter: { image: { image } } }),
      StreamImages: () => ({ filter: { image: { image: '' } } }),
      ImageStatus: () => ({ image: { image }, verbose: true }),
      PullImage: () => ({
        image: { image: `${registryHost}/library/busybox:1.0` },
        auth: { username: 'u', password: 'p', server_address: registryHost },
        sandbox_config: fixture.podConfig as Obj,
      }),
      RemoveImage: () => ({ image: { image: `${registryHost}/library/busybox:1.0` } }),
      ImageFsInfo: () => ({}),
    };
    return (table[method] ?? (() => ({})))();
  }

  // --- mutations ---------------------------------------------------------------------------------

  const NASTY = [
    '\u0000',
    '\u0007',
    '\n',
    '\ufffd',
    '../',
    '/',
    '..',
    '_',
    ' ',
    '*',
    '\u202e',
    'é',
    '%00',
    ':',
    '@',
  ];
  function nastyString(): string {
    switch (Math.floor(rand() * 6)) {
      case 0:
        return '';
      case 1:
        return 'A'.repeat(1 + Math.floor(rand() * 1024 * 1024));
      case 2:
        return pick(NASTY).repeat(1 + Math.floor(rand() * 300));
      case 3:
        return Array.from({ length: 1 + Math.floor(rand() * 64) }, () =>
          String.fromCharCode(Math.floor(rand() * 0x3000)),
        ).join('');
      case 4:
        return `../../../../${pick(['etc/passwd', 'proc/self/mem', 'dev/sda', 'run'])}`;
      default:
        return Math.floor(rand() * 16 ** 8)
          .toString(16)
          .repeat(1 + Math.floor(rand() * 10));
    }
  }
  const NUMBERS = [
    '-1',
    '0',
    '1',
    '-9223372036854775808',
    '9223372036854775807',
    '4294967296',
    '2147483648',
    '-2147483649',
    '1e400',
    '18446744073709551615',
  ];
  const IDS = (): string[] => [
    fixture.pod,
    fixture.ctr,
    fixture.pod.slice(0, 6),
    fixture.ctr.slice(0, 3),
    'f'.repeat(64),
    '0'.repeat(65),
    '',
    'x',
  ];

  /** Every (parent, key) below `obj`, so one can be picked at random. */
  function slots(
    obj: Json,
    out: [Obj | Json[], string | number][] = [],
    depth = 0,
  ): [Obj | Json[], string | number][] {
    if (depth > 8 || obj === null || typeof obj !== 'object' || Buffer.isBuffer(obj)) return out;
    if (Array.isArray(obj)) {
      obj.forEach((v, i) => {
        out.push([obj, i]);
        slots(v, out, depth + 1);
      });
    } else {
      for (const [k, v] of Object.entries(obj)) {
        out.push([obj, k]);
        slots(v, out, depth + 1);
      }
    }
    return out;
  }

  function mutateOnce(req: Obj): void {
    const all = slots(req);
    if (all.length === 0) {
      req[pick(['config', 'filter', 'container_id', 'image'])] = nastyString();
      return;
    }
    const [parent, key] = pick(all);
    const get = (): Json => (parent as Record<string | number, Json>)[key] ?? null;
    const set = (v: Json): void => {
      (parent as Record<string | number, Json>)[key] = v;
    };
    const value = get();
    const kind = Math.floor(rand() * 8);
    if (kind === 0) {
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else Reflect.deleteProperty(parent, key);
    } else if (kind === 1 && typeof key === 'string' && key.endsWith('_id')) {
      set(pick(IDS()));
    } else if (kind === 2 || typeof value === 'string') {
      if (typeof value === 'string' && /^-?\d+$/.test(value) && rand() < 0.5) set(pick(NUMBERS));
      else if (typeof value === 'string' && value !== '' && rand() < 0.3) {
        set(value.repeat(Math.min(pick([2, 64, 4096]), Math.ceil((2 * 1024 * 1024) / value.length))));
      } else set(nastyString());
    } else if (kind === 3 && typeof value === 'number') {
      set(pick([-1, 0, 2 ** 31 - 1, 2 ** 32 - 1, 65536, -65536, 99, 7]));
    } else if (kind === 4 && Array.isArray(value)) {
      const n = pick([2, 100, 10_000]);
      const first = value[0] ?? nastyString();
      set(Array.from({ length: n }, () => (typeof first === 'object' ? structuredClone(first) : first)));
    } else if (
      kind === 5 &&
      value !== null &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      !Buffer.isBuffer(value)
    ) {
      const n = pick([10, 1025, 10_000]);
      for (let i = 0; i < n; i++) value[`k${i}-${nastyString().slice(0, 8)}`] = 'v';
    } else if (kind === 6 && typeof value === 'boolean' && key !== 'privileged') {
      set(!value);
    } else if (Buffer.isBuffer(value)) {
      set(Buffer.from([0xff, 0x00, 0xfe, ...value]));
    } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      // An enum's number from nowhere, where a message or name was.
      const inner = Object.keys(value)[0];
      if (inner !== undefined) value[inner] = pick([99, -1, 12345]);
    } else {
      set(nastyString());
    }
  }

  // --- sending -----------------------------------------------------------------------------------

  type Def = MethodDefinition<object, object>;
  const methods: { service: 'runtime' | 'image'; name: string; def: Def }[] = [];
  const codes = new Map<string, number>();
  const perMethod = new Map<string, number>();
  const crispInternal: string[] = [];
  /** A few messages per code, printed for a reader to judge. */
  const samples = new Map<string, string[]>();
  let sent = 0;
  let unencodable = 0;
  let notSentOffLoopback = 0;
  let flipped = 0;

  const count = (key: string): void => {
    codes.set(key, (codes.get(key) ?? 0) + 1);
  };

  /** True if `bytes` of a PullImage request could only reach the test registry (or nothing). */
  function pullStaysLocal(def: Def, bytes: Buffer): boolean {
    const decoded = def.requestDeserialize(bytes) as { image?: { image?: string } | null };
    const spec = decoded.image?.image ?? '';
    try {
      return parseReference(spec).registry === registryHost;
    } catch {
      return true; // not a reference: refused before any network use
    }
  }

  async function callOnce(m: (typeof methods)[number]): Promise<void> {
    // A mutation protobufjs cannot encode (a map where a string goes) is tried again.
    let bytes: Buffer | undefined;
    for (let attempt = 0; attempt < 5 && bytes === undefined; attempt++) {
      const req = baseRequest(m.name);
      const rounds = 1 + Math.floor(rand() * 3);
      for (let i = 0; i < rounds; i++) mutateOnce(req);
      try {
        bytes = m.def.requestSerialize(req);
      } catch {
        unencodable++;
      }
    }
    if (bytes === undefined) return;
    // Flipped bytes make invalid UTF-8 and broken framing; never for PullImage, whose host must
    // stay exactly the test registry's.
    if (m.name !== 'PullImage' && bytes.length > 0 && rand() < 0.15) {
      bytes = Buffer.from(bytes);
      for (let i = 0; i < 1 + Math.floor(rand() * 4); i++) {
        bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      }
      flipped++;
    }
    if (m.name === 'PullImage' && !pullStaysLocal(m.def, bytes)) {
      notSentOffLoopback++;
      return;
    }
    const client: Client = m.service === 'runtime' ? cri.raw.runtime : cri.raw.image;
    const id = (b: Buffer): Buffer => b;
    sent++;
    perMethod.set(m.name, (perMethod.get(m.name) ?? 0) + 1);
    const outcome = await new Promise<{ code: GrpcCode; details: string; reply?: Buffer }>((resolve) => {
      if (m.def.responseStream) {
        const listen = m.name === 'GetContainerEvents' ? STREAM_LISTEN_MS : DEADLINE_MS;
        const stream = client.makeServerStreamRequest(m.def.path, id, id, bytes, new Metadata(), {
          deadline: Date.now() + listen,
        });
        stream.on('data', () => undefined);
        stream.on('error', (err: ServiceError) => {
          resolve({ code: err.code, details: err.details });
        });
        stream.on('end', () => {
          resolve({ code: GrpcCode.OK, details: '' });
        });
        return;
      }
      client.makeUnaryRequest(
        m.def.path,
        id,
        id,
        bytes,
        new Metadata(),
        { deadline: Date.now() + DEADLINE_MS },
        (err: ServiceError | null, reply?: Buffer) => {
          if (err) resolve({ code: err.code, details: err.details });
          else resolve({ code: GrpcCode.OK, details: '', ...(reply ? { reply } : {}) });
        },
      );
    });
    const undecodable =
      outcome.code === GrpcCode.INTERNAL && /^Error deserializing request/.test(outcome.details);
    const events = m.name === 'GetContainerEvents' && outcome.code === GrpcCode.DEADLINE_EXCEEDED;
    const key = undecodable
      ? 'INTERNAL (undecodable bytes, from grpc-js)'
      : events
        ? 'DEADLINE_EXCEEDED (GetContainerEvents listened its 300 ms)'
        : GrpcCode[outcome.code];
    count(key);
    const seen = samples.get(key) ?? [];
    if (!events && outcome.code !== GrpcCode.OK && seen.length < 3) {
      seen.push(`${m.name}: ${outcome.details.slice(0, 200)}`);
      samples.set(key, seen);
    }
    if (outcome.details.startsWith('internal error in crisp')) {
      crispInternal.push(`${m.name}: ${outcome.details}`);
    }
  }

  async function resetFixture(): Promise<void> {
    fixture.round++;
    for (const p of (await cri.runtime.ListPodSandbox({})).items) {
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 120_000);
    }
    // The fuzz may have removed the image: pull it again from the local registry.
    await cri.image.PullImage({ image: { image } }, 60_000);
    const config = podConfig(`fixture-${fixture.round}`);
    const { pod_sandbox_id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    fixture.pod = pod_sandbox_id;
    fixture.podConfig = config;
    fixture.ctr = await createAndStart(
      cri,
      { id: pod_sandbox_id, config },
      ctrConfig(`fixture-${fixture.round}`),
    );
  }

  before(async () => {
    setup = await startWithBusybox('', { logLevel: 'info' });
    ({ crisp, dirs, cri, image } = setup);
    registryHost = setup.registry.host;
    const proto = await loadCriProto();
    for (const [service, ctor] of [
      ['runtime', proto.runtime.v1.RuntimeService],
      ['image', proto.runtime.v1.ImageService],
    ] as const) {
      for (const [name, def] of Object.entries(ctor.service))
        methods.push({ service, name, def: def as Def });
    }
  });

  after(async () => {
    await setup.teardown();
  });

  it(`survives ${REQUESTS} mutated requests (seed ${SEED}) with its state consistent`, async () => {
    console.log(`fuzz: seed ${SEED} (set CRISP_FUZZ_SEED=${SEED} to replay), ${REQUESTS} requests`);
    const started = performance.now();
    let issued = 0;
    while (issued < REQUESTS) {
      await resetFixture();
      const batch = Math.min(ROUND, REQUESTS - issued);
      // Every method at least once per round, then at random.
      const plan = [
        ...methods,
        ...Array.from({ length: Math.max(0, batch - methods.length) }, () => pick(methods)),
      ];
      issued += plan.length;
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < plan.length) {
            const m = plan[next++];
            if (m) await callOnce(m);
          }
        }),
      );
    }
    const seconds = (performance.now() - started) / 1000;
    const distribution = Object.fromEntries([...codes.entries()].sort((a, b) => b[1] - a[1]));
    console.log(
      `fuzz: ${sent} requests sent in ${seconds.toFixed(1)} s (${flipped} with flipped bytes; ` +
        `${unencodable} mutations not encodable, ${notSentOffLoopback} pulls not sent as they named another host)`,
    );
    console.log(`fuzz: codes ${JSON.stringify(distribution)}`);
    for (const [key, list] of samples) console.log(`fuzz: e.g. ${key}:\n  ${list.join('\n  ')}`);

    // Every RPC was exercised.
    const missed = methods.filter((m) => !perMethod.has(m.name)).map((m) => m.name);
    assert.deepEqual(missed, [], 'every RPC was called');
    assert.ok(sent >= REQUESTS * 0.9, `${sent} of ${REQUESTS} sent`);

    // The daemon lives, answers, and had no fault.
    assert.equal(crisp.child.exitCode, null, 'crisp is still running');
    assert.equal(crisp.child.signalCode, null, 'crisp was not killed');
    assert.equal((await cri.runtime.Version({})).runtime_name, 'crisp');
    assert.deepEqual(crispInternal, [], 'no INTERNAL error from crisp');
    const fatal = crisp.logs.filter((l) => l.level >= 60);
    assert.deepEqual(fatal, [], 'no fatal log line');
    const faults = crisp.logs.filter((l) => l.level >= 50 && l.msg === 'rpc failed' && l.code === 'INTERNAL');
    assert.deepEqual(faults, [], 'no RPC failed with INTERNAL');

    // Its lists agree with its own state, and each listed object answers its status RPC.
    const state = (await (await fetch(`${crisp.metricsUrl}/debug/state`)).json()) as {
      pods: { id: string }[];
      containers: { id: string; pod: string; kind: string }[];
    };
    const pods = (await cri.runtime.ListPodSandbox({})).items;
    const ctrs = (await cri.runtime.ListContainers({})).containers;
    assert.deepEqual(
      pods.map((p) => p.id).sort(),
      state.pods.map((p) => p.id).sort(),
      'ListPodSandbox = /debug/state',
    );
    assert.deepEqual(
      ctrs.map((c) => c.id).sort(),
      state.containers
        .filter((c) => c.kind === 'app')
        .map((c) => c.id)
        .sort(),
      'ListContainers = the app containers of /debug/state',
    );
    const podIds = new Set(pods.map((p) => p.id));
    for (const c of state.containers) assert.ok(podIds.has(c.pod), `container ${c.id}'s pod ${c.pod} exists`);
    for (const p of pods) await cri.runtime.PodSandboxStatus({ pod_sandbox_id: p.id });
    for (const c of ctrs) await cri.runtime.ContainerStatus({ container_id: c.id });
    console.log(`fuzz: ${pods.length} pods and ${ctrs.length} containers at the end`);

    // Removing everything leaves nothing mounted (but the netns directory's own bind mount).
    for (const p of pods) await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 120_000);
    assert.equal((await cri.runtime.ListPodSandbox({})).items.length, 0);
    const after_ = (await (await fetch(`${crisp.metricsUrl}/debug/state`)).json()) as {
      containers: unknown[];
    };
    assert.deepEqual(after_.containers, [], 'no container record left');
    const mounts = (await mountsUnder(dirs.base)).filter((m) => m !== join(dirs.run, 'netns'));
    assert.deepEqual(mounts, [], 'no mount left');
  });
});
