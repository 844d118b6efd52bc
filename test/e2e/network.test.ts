/**
 * Pod networking through the real Debian CNI plugins (bridge, host-local, portmap) on the test
 * daemon's own bridge and /24: pod IPs, pod-to-pod traffic, a host port on 127.0.0.1, DNS, host
 * network, teardown that leaves no netns, veth, lease, cache entry or iptables rule, and the
 * failures: a plugin that fails, hangs or is missing, a malformed config, DEL after the config
 * went away. Traffic stays on loopback and inside the test's namespaces and bridge.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { pino } from 'pino';
import { CniManager } from '../../src/netns/cni.js';
import { runCommand } from '../../src/util/command.js';
import { execSh, createAndStart, connectCri, rejection, type CriClients } from './harness/cri-client.js';
import { spawnCrisp, testConflist } from './harness/daemon.js';
import { until } from './harness/host.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

const PORTMAP = { type: 'portmap', capabilities: { portMappings: true } };
const CONFLIST = '10-crisp-e2e.conflist';
/** A host port for the test, away from the usual service ranges' start. */
const HOST_PORT = 30000 + Math.floor(Math.random() * 2000);

describe('pod networking (CNI)', () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let bin: string;
  let podCount = 0;
  /** Whether portmap's shared chains were there before this file ran (then they stay). */
  let hadPortmapChains = true;

  const write = (name: string, text: string) => writeFile(join(setup.dirs.cniConfDir, name), text);
  const useConflist = (extra: object[] = [PORTMAP]) => write(CONFLIST, testConflist(setup.dirs, extra));

  before(async () => {
    // Plugins of the test's own: one that fails, one that hangs (found before /usr/lib/cni).
    hadPortmapChains = (await runCommand('iptables-save', ['-t', 'nat'])).stdout.includes(
      ':CNI-HOSTPORT-DNAT',
    );
    bin = join(await mkdtemp(join(tmpdir(), 'crisp-e2e-cnibin-')), 'bin');
    await mkdir(bin, { recursive: true });
    await writeFile(
      join(bin, 'crisp-e2e-fail'),
      '#!/bin/sh\ncat >/dev/null\nif [ "$CNI_COMMAND" = ADD ]; then echo \'{"code":7,"msg":"no room at the inn"}\'; exit 1; fi\n[ "$CNI_COMMAND" = VERSION ] && echo \'{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}\'\nexit 0\n',
    );
    await writeFile(
      join(bin, 'crisp-e2e-hang'),
      '#!/bin/sh\ncat >/dev/null\nif [ "$CNI_COMMAND" = ADD ]; then exec sleep 60; fi\nexit 0\n',
    );
    await chmod(join(bin, 'crisp-e2e-fail'), 0o755);
    await chmod(join(bin, 'crisp-e2e-hang'), 0o755);
    setup = await startWithBusybox('', {
      networkToml: `cni_bin_dirs = ${JSON.stringify([bin, '/usr/lib/cni'])}\nplugin_timeout_seconds = 2`,
    });
    cri = setup.cri;
    await useConflist();
  });

  after(async () => {
    await setup.teardown();
    await rm(join(bin, '..'), { recursive: true, force: true });
    if (!hadPortmapChains) {
      // portmap keeps its shared chains for the next pod; the test made them, so it removes them.
      const ipt = (...args: string[]) =>
        runCommand('iptables', ['-t', 'nat', ...args]).catch(() => undefined);
      await ipt('-D', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT');
      await ipt('-D', 'OUTPUT', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT');
      await ipt(
        '-D',
        'POSTROUTING',
        '-m',
        'comment',
        '--comment',
        'CNI portfwd requiring masquerade',
        '-j',
        'CNI-HOSTPORT-MASQ',
      );
      for (const chain of ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SETMARK']) {
        await ipt('-F', chain);
        await ipt('-X', chain);
      }
    }
  });

  const podConfig = (extra: Record<string, unknown> = {}) => {
    const name = `net${++podCount}`;
    return {
      metadata: { name, namespace: 'e2e-net', uid: `uid-${name}`, attempt: 0 },
      hostname: name,
      ...extra,
    };
  };
  const runPod = async (extra: Record<string, unknown> = {}) => {
    const config = podConfig(extra);
    const { pod_sandbox_id: id } = await cri.runtime.RunPodSandbox({ config }, 60_000);
    return { id, config };
  };
  type Pod = Awaited<ReturnType<typeof runPod>>;
  const run = async (pod: Pod, name: string, command: string[]) => {
    return createAndStart(cri, pod, { metadata: { name }, image: { image: setup.image }, command });
  };
  const sh = (id: string, script: string) => execSh(cri, id, script, { trim: true });
  const webServer = (text: string) => [
    'sh',
    '-c',
    `mkdir -p /tmp/www && echo ${text} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www`,
  ];
  const podIp = async (id: string) =>
    (await cri.runtime.PodSandboxStatus({ pod_sandbox_id: id })).status?.network?.ip ?? '';
  const subnetPrefix = () => setup.dirs.network.subnet.replace(/\.0\/24$/, '.');

  /** What a pod may leave on the node, so a test can check it is all gone. */
  const traces = async (podId: string, ip: string) => {
    const brif = await readdir(`/sys/class/net/${setup.dirs.network.bridge}/brif`).catch((): string[] => []);
    const leases = await readdir(join(setup.dirs.network.ipamDir, 'crisp-e2e')).catch((): string[] => []);
    const cache = await readdir(join(setup.dirs.root, 'cni', 'results')).catch((): string[] => []);
    const netns = await readdir(join(setup.dirs.run, 'netns')).catch((): string[] => []);
    const nat = (await runCommand('iptables-save', ['-t', 'nat'])).stdout;
    return {
      veths: brif.length,
      lease: leases.includes(ip),
      cache: cache.filter((f) => f.includes(podId)),
      netns: netns.includes(podId),
      iptables: nat.split('\n').filter((l) => l.includes(podId)).length,
    };
  };

  it('gives pods IPs from the bridge network that reach each other, and removes every trace', async () => {
    const a = await runPod();
    const b = await runPod();
    const ipA = await podIp(a.id);
    const ipB = await podIp(b.id);
    assert.ok(ipA.startsWith(subnetPrefix()), `pod A's IP ${ipA} is in ${setup.dirs.network.subnet}`);
    assert.ok(ipB.startsWith(subnetPrefix()) && ipB !== ipA, `pod B's IP ${ipB}`);
    const web = await run(a, 'web', webServer('hello-from-a'));
    const client = await run(b, 'client', ['sleep', '1000']);
    assert.match(
      (await sh(web, 'ip -4 addr show eth0')).out,
      new RegExp(`inet ${ipA.replace(/\./g, '\\.')}/`),
    );
    const got = await until('pod A’s web server', async () => {
      // busybox-static's wget crashes in glibc's resolver here; nc speaks the HTTP itself.
      const res = await sh(client, `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${ipA} 8080`);
      return res.code === 0 && res.out.includes('200 OK') ? res.out.split('\n').at(-1) : undefined;
    });
    assert.equal(got, 'hello-from-a');

    const before = await traces(a.id, ipA);
    assert.ok(
      before.veths >= 2 && before.lease && before.cache.length === 1 && before.netns,
      JSON.stringify(before),
    );
    for (const p of [a, b]) {
      await cri.runtime.StopPodSandbox({ pod_sandbox_id: p.id }, 60_000);
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
    }
    assert.deepEqual(await traces(a.id, ipA), {
      veths: 0,
      lease: false,
      cache: [],
      netns: false,
      iptables: 0,
    });
    assert.equal((await traces(b.id, ipB)).lease, false);
  });

  it('maps a host port to the pod, reachable at 127.0.0.1, and removes the rules', async () => {
    const p = await runPod({
      port_mappings: [{ protocol: 'TCP', container_port: 8080, host_port: HOST_PORT }],
    });
    await run(p, 'web', webServer('hello-via-host-port'));
    const body = await until(`127.0.0.1:${HOST_PORT}`, async () => {
      const res = await fetch(`http://127.0.0.1:${HOST_PORT}/`, { signal: AbortSignal.timeout(2000) }).catch(
        () => undefined,
      );
      return res?.ok ? (await res.text()).trim() : undefined;
    });
    assert.equal(body, 'hello-via-host-port');
    assert.ok((await traces(p.id, await podIp(p.id))).iptables > 0, 'portmap rules name the pod');

    // A second pod asking for the same host port fails; the first keeps working.
    const err = await rejection(
      cri.runtime.RunPodSandbox(
        {
          config: podConfig({
            port_mappings: [{ protocol: 'TCP', container_port: 80, host_port: HOST_PORT }],
          }),
        },
        60_000,
      ),
    );
    assert.equal(err.code, GrpcCode.FAILED_PRECONDITION, err.details);
    assert.match(err.details, new RegExp(`${HOST_PORT}/tcp.*${p.id}`));
    const again = await fetch(`http://127.0.0.1:${HOST_PORT}/`, { signal: AbortSignal.timeout(2000) });
    assert.equal((await again.text()).trim(), 'hello-via-host-port');

    const ip = await podIp(p.id);
    await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
    assert.equal((await traces(p.id, ip)).iptables, 0, 'no rule left');
  });

  it('writes the pod’s DNS config, and leaves a host-network pod the node’s interfaces', async () => {
    const dns = { servers: ['10.85.0.10'], searches: ['svc.example'], options: ['ndots:3'] };
    const p = await runPod({ dns_config: dns });
    const id = await run(p, 'dns', ['sleep', '1000']);
    const resolv = (await sh(id, 'cat /etc/resolv.conf')).out;
    assert.match(resolv, /nameserver 10\.85\.0\.10/);
    assert.match(resolv, /search svc\.example/);
    assert.match(resolv, /options ndots:3/);

    const host = await runPod({ linux: { security_context: { namespace_options: { network: 'NODE' } } } });
    const h = await run(host, 'host', ['sleep', '1000']);
    assert.match((await sh(h, 'ip link')).out, new RegExp(setup.dirs.network.bridge));
    assert.equal(await podIp(host.id), '', 'no pod IP: it uses the node’s');
    for (const x of [p, host]) await cri.runtime.RemovePodSandbox({ pod_sandbox_id: x.id }, 60_000);
  });

  it('tears a pod down from the cached ADD after its network config was removed', async () => {
    const p = await runPod();
    const ip = await podIp(p.id);
    await rm(join(setup.dirs.cniConfDir, CONFLIST));
    try {
      await cri.runtime.StopPodSandbox({ pod_sandbox_id: p.id }, 60_000);
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
      assert.deepEqual(await traces(p.id, ip), {
        veths: 0,
        lease: false,
        cache: [],
        netns: false,
        iptables: 0,
      });
    } finally {
      await useConflist();
    }
  });

  it('fails a pod cleanly when a plugin fails, hangs or is missing, or the config is malformed', async () => {
    const snapshot = async () => ({
      pods: (await cri.runtime.ListPodSandbox({})).items.length,
      netns: await readdir(join(setup.dirs.run, 'netns')),
      leases: (await readdir(join(setup.dirs.network.ipamDir, 'crisp-e2e')).catch((): string[] => [])).filter(
        (f) => /^\d/.test(f),
      ),
      veths: (await readdir(`/sys/class/net/${setup.dirs.network.bridge}/brif`).catch((): string[] => []))
        .length,
    });
    const baseline = await snapshot();
    const noTrace = async () => {
      assert.deepEqual(await snapshot(), baseline, 'no pod, netns, lease or veth left');
    };
    try {
      // A plugin that fails after bridge gave out an address: its message, and bridge undone.
      await useConflist([{ type: 'crisp-e2e-fail' }]);
      const failed = await rejection(cri.runtime.RunPodSandbox({ config: podConfig() }, 60_000));
      assert.match(failed.details, /crisp-e2e-fail/);
      assert.match(failed.details, /no room at the inn/);
      await noTrace();

      // A plugin that hangs is killed after plugin_timeout_seconds.
      await useConflist([{ type: 'crisp-e2e-hang' }]);
      const started = performance.now();
      const hung = await rejection(cri.runtime.RunPodSandbox({ config: podConfig() }, 60_000));
      assert.equal(hung.code, GrpcCode.DEADLINE_EXCEEDED, hung.details);
      assert.match(hung.details, /crisp-e2e-hang/);
      assert.ok(performance.now() - started < 20_000, 'bounded by the timeout');
      await noTrace();

      // A missing plugin binary and a malformed config: not ready, naming them; pods fail fast.
      await useConflist([{ type: 'crisp-e2e-nosuch' }]);
      const missing = (await cri.runtime.Status({})).status?.conditions.find(
        (c) => c.type === 'NetworkReady',
      );
      assert.equal(missing?.status, false);
      assert.match(missing.message, /crisp-e2e-nosuch/);
      const noPlugin = await rejection(cri.runtime.RunPodSandbox({ config: podConfig() }, 60_000));
      assert.match(noPlugin.details, /crisp-e2e-nosuch/);
      await noTrace();

      await useConflist();
      await write('00-broken.conflist', '{ "cniVersion": "1.0.0", "name": ');
      const broken = (await cri.runtime.Status({})).status?.conditions.find((c) => c.type === 'NetworkReady');
      assert.equal(broken?.status, false);
      assert.match(broken.message, /00-broken\.conflist/);
      const bad = await rejection(cri.runtime.RunPodSandbox({ config: podConfig() }, 60_000));
      assert.equal(bad.code, GrpcCode.FAILED_PRECONDITION, bad.details);
      assert.match(bad.details, /00-broken\.conflist/);
      await noTrace();
    } finally {
      await rm(join(setup.dirs.cniConfDir, '00-broken.conflist'), { force: true });
      await useConflist();
    }
    const ready = (await cri.runtime.Status({})).status?.conditions.find((c) => c.type === 'NetworkReady');
    assert.equal(ready?.status, true, ready?.message);
  });

  it('hands kubelet’s pod CIDR (UpdateRuntimeConfig) to a network that asks for ipRanges', async () => {
    const half = `${subnetPrefix()}128/25`;
    const bad = await rejection(
      cri.runtime.UpdateRuntimeConfig({ runtime_config: { network_config: { pod_cidr: '10.85.0.0/99' } } }),
    );
    assert.equal(bad.code, GrpcCode.INVALID_ARGUMENT, bad.details);
    assert.match(bad.details, /pod_cidr.*10\.85\.0\.0\/99/);
    await cri.runtime.UpdateRuntimeConfig({ runtime_config: { network_config: { pod_cidr: half } } });
    const list = JSON.parse(testConflist(setup.dirs, [PORTMAP])) as { plugins: Record<string, unknown>[] };
    const bridge = list.plugins[0];
    assert.ok(bridge);
    // The addresses come from the runtime alone (host-local adds configured ranges to ipRanges).
    bridge.capabilities = { ipRanges: true };
    bridge.ipam = { type: 'host-local', dataDir: setup.dirs.network.ipamDir };
    // A bridge of its own: the daemon's bridge already holds the /24's gateway address.
    const ownBridge = `${setup.dirs.network.bridge}r`;
    bridge.bridge = ownBridge;
    await write(CONFLIST, JSON.stringify(list));
    try {
      const p = await runPod();
      const last = Number((await podIp(p.id)).split('.')[3]);
      assert.ok(last >= 128, `the pod's address is in ${half} (got .${last})`);
      await cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 60_000);
    } finally {
      await useConflist();
      await runCommand('ip', ['link', 'del', ownBridge]).catch(() => undefined);
    }
  });

  it('tears down a netns and a CNI attachment that belong to no pod after a crash', async () => {
    // What a crash between steps leaves: a pinned netns and a cached CNI attachment, no pod.
    await setup.crisp.stop();
    setup.cri.close();
    const id = 'e'.repeat(64);
    const path = join(setup.dirs.run, 'netns', id);
    await writeFile(path, '');
    await runCommand('unshare', [`--net=${path}`, 'true']);
    const stray = new CniManager({
      confDir: setup.dirs.cniConfDir,
      binDirs: ['/usr/lib/cni'],
      cacheDir: join(setup.dirs.root, 'cni', 'results'),
      log: pino({ level: 'silent' }),
    });
    const attached = await stray.add({
      sandboxId: id,
      netnsPath: path,
      name: 'stray',
      namespace: 'e2e-net',
      uid: 'stray',
    });
    const ip = attached.ips[0]?.ip ?? '';
    const left = await traces(id, ip);
    assert.ok(left.netns && left.lease && left.cache.length === 1 && left.veths === 1, JSON.stringify(left));

    // The restarted daemon finds them once its recovery is done, removes them and counts them.
    setup.crisp = spawnCrisp(setup.dirs);
    await setup.crisp.ready();
    setup.cri = await connectCri(setup.dirs.socket);
    cri = setup.cri;
    await setup.crisp.recovered();
    const clean = { veths: 0, lease: false, cache: [], netns: false, iptables: 0 };
    await until('the leaked networking to be torn down', async () => {
      const now = await traces(id, ip);
      return JSON.stringify(now) === JSON.stringify(clean) ? now : undefined;
    });
    const metrics = await (await fetch(`${setup.crisp.metricsUrl}/metrics`)).text();
    assert.match(metrics, /crisp_netns_leaked_total\{kind="cni_cache"\} 1/);
    assert.match(metrics, /crisp_netns_leaked_total\{kind="netns"\} 1/);
  });
});
