// CniManager against fake plugins (small shell scripts that log their env and stdin) and, as
// root, against the real Debian plugins in /usr/lib/cni inside a throwaway network namespace.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  access,
  chmod,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  realpath,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AlreadyExistsError,
  CanceledError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
} from '../errors.js';
import { createLogger } from '../log/logger.js';
import { runCommand } from '../util/command.js';
import { parseResultIps } from './cni-result.js';
import { CniManager, type CniOp, type CniPod } from './cni.js';

const log = createLogger({ level: 'silent', format: 'json' });
const roots: string[] = [];

after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

// --- fixtures -------------------------------------------------------------------------------------

interface Fixture {
  root: string;
  confDir: string;
  binDir: string;
  binDir2: string;
  cacheDir: string;
  logDir: string;
}

async function fixture(): Promise<Fixture> {
  const root = await realpath(await mkdtemp(join(tmpdir(), 'crisp-cni-')));
  roots.push(root);
  const f: Fixture = {
    root,
    confDir: join(root, 'net.d'),
    binDir: join(root, 'bin'),
    binDir2: join(root, 'bin2'),
    cacheDir: join(root, 'cache', 'results'),
    logDir: join(root, 'log'),
  };
  for (const d of [f.confDir, f.binDir, f.binDir2, f.logDir]) await mkdir(d, { recursive: true });
  return f;
}

function manager(f: Fixture, extra: Partial<ConstructorParameters<typeof CniManager>[0]> = {}): CniManager {
  return new CniManager({
    confDir: f.confDir,
    binDirs: [f.binDir, f.binDir2],
    cacheDir: f.cacheDir,
    log,
    timeoutMs: 10_000,
    ...extra,
  });
}

interface FakeSpec {
  /** What ADD prints (default `{"cniVersion":"1.0.0"}`). */
  result?: unknown;
  /** Print this CNI error on stdout and exit 1 for `on`. */
  fail?: { on: CniOp; code: number; msg: string; details?: string };
  /** Print this on stderr only and exit 2 for `on`. */
  stderrFail?: { on: CniOp; text: string };
  /** Sleep this long (seconds) first for `on`; `hang` execs into a long sleep. */
  sleep?: { on: CniOp; seconds: number };
  hang?: CniOp;
  /** Written to `<n>.marker` in the log dir, to tell two binaries of one type apart. */
  marker?: string;
}

const shq = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

async function fakePlugin(f: Fixture, type: string, spec: FakeSpec = {}, dir = f.binDir): Promise<string> {
  const lines = [
    '#!/bin/sh',
    `log=${shq(f.logDir)}`,
    'input=$(cat)',
    'n=$(( $(cat "$log/seq" 2>/dev/null || echo 0) + 1 ))',
    'echo "$n" > "$log/seq"',
    `printf '%s' "$input" > "$log/$n.${type}.$CNI_COMMAND.stdin"`,
    `env > "$log/$n.${type}.$CNI_COMMAND.env"`,
  ];
  if (spec.marker !== undefined) lines.push(`echo ${shq(spec.marker)} > "$log/$n.marker"`);
  if (spec.sleep)
    lines.push(`if [ "$CNI_COMMAND" = ${spec.sleep.on} ]; then sleep ${spec.sleep.seconds}; fi`);
  if (spec.hang) lines.push(`if [ "$CNI_COMMAND" = ${spec.hang} ]; then exec sleep 60; fi`);
  if (spec.fail) {
    const { on, ...err } = spec.fail;
    lines.push(`if [ "$CNI_COMMAND" = ${on} ]; then printf '%s' ${shq(JSON.stringify(err))}; exit 1; fi`);
  }
  if (spec.stderrFail) {
    lines.push(
      `if [ "$CNI_COMMAND" = ${spec.stderrFail.on} ]; then echo ${shq(spec.stderrFail.text)} >&2; exit 2; fi`,
    );
  }
  const result = JSON.stringify(spec.result ?? { cniVersion: '1.0.0' });
  lines.push(`if [ "$CNI_COMMAND" = ADD ]; then printf '%s' ${shq(result)}; fi`, 'exit 0', '');
  const path = join(dir, type);
  await writeFile(path, lines.join('\n'), { mode: 0o755 });
  await chmod(path, 0o755);
  return path;
}

interface Call {
  n: number;
  type: string;
  op: string;
  stdin: Record<string, unknown>;
  env: Record<string, string>;
  marker?: string;
}

async function calls(f: Fixture): Promise<Call[]> {
  const out: Call[] = [];
  for (const name of await readdir(f.logDir)) {
    const m = /^(\d+)\.(.+)\.(ADD|DEL|CHECK)\.stdin$/.exec(name);
    if (!m) continue;
    const [, n = '', type = '', op = ''] = m;
    const stdin = JSON.parse(await readFile(join(f.logDir, name), 'utf8')) as Record<string, unknown>;
    const env: Record<string, string> = {};
    for (const line of (await readFile(join(f.logDir, `${n}.${type}.${op}.env`), 'utf8')).split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
    }
    const call: Call = { n: Number(n), type, op, stdin, env };
    try {
      call.marker = (await readFile(join(f.logDir, `${n}.marker`), 'utf8')).trim();
    } catch {
      // no marker
    }
    out.push(call);
  }
  return out.sort((a, b) => a.n - b.n);
}

const summary = (cs: Call[]): string[] => cs.map((c) => `${c.type} ${c.op}`);

async function clearCalls(f: Fixture): Promise<void> {
  await rm(f.logDir, { recursive: true, force: true });
  await mkdir(f.logDir);
}

async function writeConf(f: Fixture, file: string, content: unknown): Promise<string> {
  const path = join(f.confDir, file);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return path;
}

function list(name: string, plugins: Record<string, unknown>[], cniVersion = '1.0.0', extra = {}): unknown {
  return { cniVersion, name, ...extra, plugins };
}

let seq = 0;
function pod(extra: Partial<CniPod> = {}): CniPod {
  seq++;
  return {
    sandboxId: `${randomBytes(8).toString('hex')}${seq}`,
    netnsPath: `/run/crisp/netns/fake-${seq}`,
    name: `web-${seq}`,
    namespace: 'default',
    uid: `uid-${seq}`,
    ...extra,
  };
}

/** A 1.0.0 result like bridge's: bridge, host veth, sandbox eth0; IPs on eth0. */
function bridgeLikeResult(netns: string, v4 = '10.85.0.5/16', v6 = 'fd00::5/64'): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    interfaces: [
      { name: 'cni0', mac: '02:00:00:00:00:01' },
      { name: 'veth1234', mac: '02:00:00:00:00:02' },
      { name: 'eth0', mac: '02:00:00:00:00:03', sandbox: netns },
    ],
    ips: [
      { interface: 2, address: v6, gateway: 'fd00::1' },
      { interface: 0, address: '10.85.0.1/16' },
      { interface: 2, address: v4, gateway: '10.85.0.1' },
    ],
    routes: [{ dst: '0.0.0.0/0' }],
    dns: {},
  };
}

// --- config selection and status -----------------------------------------------------------------------

describe('CniManager.status', () => {
  it('is not ready without a config, and names the directory', async () => {
    const f = await fixture();
    const s = await manager(f).status();
    assert.equal(s.ready, false);
    assert.equal(s.reason, 'NetworkPluginNotReady');
    assert.match(s.message, new RegExp(`no CNI network configuration in ${f.confDir}`));
    assert.equal(s.file, undefined);
    await assert.rejects(manager(f).add(pod()), UnavailableError);
  });

  it('picks the lexically first .conflist/.conf/.json and wraps a .conf', async () => {
    const f = await fixture();
    await fakePlugin(f, 'fake-a');
    await fakePlugin(f, 'fake-b');
    await writeConf(f, '20-b.conflist', list('second', [{ type: 'fake-b' }]));
    await writeConf(f, '00-notes.txt', 'not a config');
    await mkdir(join(f.confDir, '01-dir.conflist'));
    const conf = await writeConf(f, '10-a.conf', {
      cniVersion: '0.4.0',
      name: 'first',
      type: 'fake-a',
      x: 1,
    });
    const m = manager(f);
    assert.deepEqual(await m.status(), { ready: true, reason: '', message: '', file: conf });

    const p = pod();
    const att = await m.add(p);
    assert.equal(att.networkName, 'first');
    assert.equal(att.configFile, conf);
    const [add] = await calls(f);
    assert.equal(add?.type, 'fake-a');
    assert.deepEqual(add.stdin, { cniVersion: '0.4.0', name: 'first', type: 'fake-a', x: 1 });
    const cache = JSON.parse(await readFile(join(f.cacheDir, `first-${p.sandboxId}-eth0`), 'utf8')) as {
      config: string;
    };
    assert.deepEqual(JSON.parse(Buffer.from(cache.config, 'base64').toString()), {
      cniVersion: '0.4.0',
      name: 'first',
      plugins: [{ cniVersion: '0.4.0', name: 'first', type: 'fake-a', x: 1 }],
    });

    const json = await writeConf(f, '05-c.json', { cniVersion: '1.0.0', name: 'third', type: 'fake-b' });
    assert.equal((await m.status()).file, json);
  });

  it('is not ready when the selected file is malformed, naming the file and the problem', async () => {
    const f = await fixture();
    await fakePlugin(f, 'fake-a');
    const m = manager(f);
    // A valid later file does not help: CNI uses the first one.
    await writeConf(f, '90-ok.conflist', list('ok', [{ type: 'fake-a' }]));
    const cases: [string, string, RegExp][] = [
      ['10-x.conflist', '{"cniVersion": "1.0.0", "name": ', /not valid JSON/],
      ['10-x.conflist', JSON.stringify({ cniVersion: '1.0.0', plugins: [{ type: 'fake-a' }] }), /no "name"/],
      ['10-x.conflist', JSON.stringify({ name: 'n', plugins: [{ type: 'fake-a' }] }), /no "cniVersion"/],
      ['10-x.conflist', JSON.stringify({ name: 'n', cniVersion: '1.0.0' }), /no "plugins" list/],
      ['10-x.conflist', JSON.stringify({ name: 'n', cniVersion: '1.0.0', plugins: [] }), /empty "plugins"/],
      [
        '10-x.conflist',
        JSON.stringify({ name: 'n', cniVersion: '1.0.0', plugins: [{ type: 'fake-a' }, { ipam: {} }] }),
        /plugin 2 has no "type"/,
      ],
      [
        '10-x.conflist',
        JSON.stringify({ name: 'a/b', cniVersion: '1.0.0', plugins: [{ type: 'x' }] }),
        /invalid characters/,
      ],
      ['10-x.conf', JSON.stringify({ name: 'n', cniVersion: '1.0.0' }), /has no "type"/],
      ['10-x.conf', JSON.stringify(list('n', [{ type: 'fake-a' }])), /name it \.conflist/],
    ];
    for (const [file, text, problem] of cases) {
      await rm(join(f.confDir, '10-x.conflist'), { force: true });
      await rm(join(f.confDir, '10-x.conf'), { force: true });
      const path = await writeConf(f, file, text);
      const s = await m.status();
      assert.equal(s.ready, false, text);
      assert.equal(s.file, path);
      assert.ok(s.message.includes(path), s.message);
      assert.match(s.message, problem);
      await assert.rejects(
        m.add(pod()),
        (err) => err instanceof FailedPreconditionError && problem.test(err.message),
      );
    }
    assert.deepEqual(await calls(f), []);
  });

  it('is not ready when a plugin binary is missing from every bin dir (or not executable)', async () => {
    const f = await fixture();
    await fakePlugin(f, 'fake-a');
    await writeFile(join(f.binDir, 'fake-noexec'), '#!/bin/sh\n', { mode: 0o644 });
    const path = await writeConf(
      f,
      '10-n.conflist',
      list('n', [{ type: 'fake-a' }, { type: 'fake-missing' }]),
    );
    const s = await manager(f).status();
    assert.equal(s.ready, false);
    assert.equal(s.file, path);
    assert.match(s.message, /plugin "fake-missing" not found in .*\/bin, .*\/bin2/);
    await assert.rejects(manager(f).add(pod()), (err) => {
      assert.ok(err instanceof UnavailableError);
      assert.match(err.message, /CNI plugin "fake-missing" not found/);
      return true;
    });
    assert.deepEqual(await calls(f), [], 'nothing runs when a binary is missing');

    await writeConf(f, '10-n.conflist', list('n', [{ type: 'fake-noexec' }]));
    assert.match((await manager(f).status()).message, /plugin "fake-noexec" not found/);
  });

  it('takes each binary from the first bin dir that has it', async () => {
    const f = await fixture();
    await fakePlugin(f, 'fake-a', { marker: 'second' }, f.binDir2);
    await fakePlugin(f, 'fake-b', { marker: 'second' }, f.binDir2);
    await fakePlugin(f, 'fake-b', { marker: 'first' }, f.binDir);
    await writeConf(f, '10-n.conflist', list('n', [{ type: 'fake-a' }, { type: 'fake-b' }]));
    await manager(f).add(pod());
    assert.deepEqual(
      (await calls(f)).map((c) => `${c.type}:${c.marker ?? ''}`),
      ['fake-a:second', 'fake-b:first'],
    );
  });
});

// --- ADD: env, stdin, results ------------------------------------------------------------------------------

describe('CniManager.add', () => {
  it('passes the CNI env, CNI_ARGS and per-plugin stdin with prevResult chaining and runtimeConfig', async () => {
    const f = await fixture();
    const r1 = { cniVersion: '1.0.0', ips: [{ address: '10.1.0.2/24' }] };
    const r2 = bridgeLikeResult('/x');
    await fakePlugin(f, 'fake-a', { result: r1 });
    await fakePlugin(f, 'fake-b', { result: r2 });
    await fakePlugin(f, 'fake-c', { result: r2 });
    await writeConf(
      f,
      '10-n.conflist',
      list('net', [
        {
          type: 'fake-a',
          name: 'overwritten',
          cniVersion: '0.1.0',
          ipam: { type: 'host-local', ranges: [[{ subnet: '10.1.0.0/24' }]] },
          capabilities: { portMappings: true, bandwidth: true, dns: false },
        },
        { type: 'fake-b', capabilities: { dns: true, ipRanges: true, mac: true } },
        { type: 'fake-c' },
      ]),
    );
    const observed: string[] = [];
    const m = manager(f, { observe: (op, type, s) => observed.push(`${op} ${type} ${s >= 0 && s < 10}`) });
    const p = pod({
      portMappings: [
        { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' },
        { hostPort: 0, containerPort: 81, protocol: 'udp', hostIP: '' },
        { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
      ],
      dns: { servers: ['10.96.0.10'], searches: ['svc.cluster.local'], options: ['ndots:5'] },
      bandwidth: { ingressRate: 1000, egressRate: 2000 },
      capabilityArgs: { ipRanges: [[{ subnet: '10.85.0.0/16' }]], portMappings: 'overridden' },
    });
    const att = await m.add(p);
    const cs = await calls(f);
    assert.deepEqual(summary(cs), ['fake-a ADD', 'fake-b ADD', 'fake-c ADD']);
    assert.deepEqual(observed, ['ADD fake-a true', 'ADD fake-b true', 'ADD fake-c true']);

    for (const c of cs) {
      assert.equal(c.env.CNI_COMMAND, 'ADD');
      assert.equal(c.env.CNI_CONTAINERID, p.sandboxId);
      assert.equal(c.env.CNI_NETNS, p.netnsPath);
      assert.equal(c.env.CNI_IFNAME, 'eth0');
      assert.equal(c.env.CNI_PATH, `${f.binDir}:${f.binDir2}`);
      assert.equal(c.env.PATH, process.env.PATH, 'the runtime environment is passed on');
      const args: Record<string, string> = {};
      for (const kv of (c.env.CNI_ARGS ?? '').split(';')) {
        const [k = '', v = ''] = kv.split('=');
        args[k] = v;
      }
      assert.deepEqual(args, {
        IgnoreUnknown: '1',
        K8S_POD_NAMESPACE: 'default',
        K8S_POD_NAME: p.name,
        K8S_POD_INFRA_CONTAINER_ID: p.sandboxId,
        K8S_POD_UID: p.uid,
      });
      assert.equal(c.stdin.name, 'net');
      assert.equal(c.stdin.cniVersion, '1.0.0');
    }
    const [a, b, c] = cs;
    assert.ok(a && b && c);
    assert.equal('prevResult' in a.stdin, false);
    assert.deepEqual(a.stdin.ipam, { type: 'host-local', ranges: [[{ subnet: '10.1.0.0/24' }]] });
    assert.deepEqual(a.stdin.runtimeConfig, {
      portMappings: [
        { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' },
        { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
      ],
      bandwidth: { ingressRate: 1000, egressRate: 2000 },
    });
    assert.deepEqual(b.stdin.prevResult, r1);
    assert.deepEqual(b.stdin.runtimeConfig, {
      dns: { servers: ['10.96.0.10'], searches: ['svc.cluster.local'], options: ['ndots:5'] },
      ipRanges: [[{ subnet: '10.85.0.0/16' }]],
    });
    assert.deepEqual(c.stdin.prevResult, r2);
    assert.equal('runtimeConfig' in c.stdin, false);

    assert.deepEqual(att.result, r2);
    assert.deepEqual(att.ips, [
      { address: '10.85.0.5/16', ip: '10.85.0.5', gateway: '10.85.0.1', family: 4 },
      { address: 'fd00::5/64', ip: 'fd00::5', gateway: 'fd00::1', family: 6 },
    ]);
  });

  it('parses 0.4.0 and 0.2.0 results, IPv4 first', async () => {
    const f = await fixture();
    const r040 = {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'br0' }, { name: 'eth0', sandbox: '/ns' }],
      ips: [
        { version: '6', interface: 1, address: '2001:db8::7/64' },
        { version: '4', interface: 1, address: '192.168.9.7/24', gateway: '192.168.9.1' },
      ],
    };
    await fakePlugin(f, 'fake-040', { result: r040 });
    await writeConf(f, '10-n.conflist', list('n040', [{ type: 'fake-040' }], '0.4.0'));
    const att = await manager(f).add(pod());
    assert.deepEqual(
      att.ips.map((i) => [i.family, i.ip, i.address, i.gateway]),
      [
        [4, '192.168.9.7', '192.168.9.7/24', '192.168.9.1'],
        [6, '2001:db8::7', '2001:db8::7/64', undefined],
      ],
    );

    const r020 = {
      cniVersion: '0.2.0',
      ip6: { ip: 'fd01::9/64', gateway: 'fd01::1' },
      ip4: { ip: '10.22.0.9/16', gateway: '10.22.0.1', routes: [{ dst: '0.0.0.0/0' }] },
      dns: {},
    };
    await fakePlugin(f, 'fake-020', { result: r020 });
    await writeConf(f, '10-n.conflist', list('n020', [{ type: 'fake-020' }], '0.2.0'));
    const att2 = await manager(f).add(pod());
    assert.deepEqual(att2.ips, [
      { address: '10.22.0.9/16', ip: '10.22.0.9', gateway: '10.22.0.1', family: 4 },
      { address: 'fd01::9/64', ip: 'fd01::9', gateway: 'fd01::1', family: 6 },
    ]);
  });

  it('parseResultIps: sandbox interface only, IPAM-only results, junk', () => {
    assert.deepEqual(
      parseResultIps(bridgeLikeResult('/ns'), 'eth0').map((i) => i.address),
      ['10.85.0.5/16', 'fd00::5/64'],
    );
    assert.deepEqual(
      parseResultIps({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.3/8', gateway: '10.0.0.1' }] }, 'eth0'),
      [{ address: '10.0.0.3/8', ip: '10.0.0.3', gateway: '10.0.0.1', family: 4 }],
    );
    assert.deepEqual(parseResultIps({ ips: [{ address: 'nonsense' }, 7] }, 'eth0'), []);
    assert.deepEqual(parseResultIps('x', 'eth0'), []);
    assert.deepEqual(parseResultIps({}, 'eth0'), []);
  });

  it('writes the cache in libcni format, atomically, 0700/0600', async () => {
    const f = await fixture();
    const p = pod({ portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp', hostIP: '' }] });
    const result = bridgeLikeResult(p.netnsPath);
    await fakePlugin(f, 'fake-a', { result });
    // Odd spacing: the cache must keep the exact bytes.
    const text = `{ "cniVersion":"1.0.0",  "name":"crisp",\n "plugins":[ {"type":"fake-a"} ] }\n`;
    await writeConf(f, '10-crisp.conflist', text);
    const m = manager(f);
    await m.add(p);
    const path = join(f.cacheDir, `crisp-${p.sandboxId}-eth0`);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(f.cacheDir)).mode & 0o777, 0o700);
    assert.deepEqual(await readdir(f.cacheDir), [`crisp-${p.sandboxId}-eth0`], 'no temp files left');
    const cache = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    assert.equal(cache.kind, 'cniCacheV1');
    assert.equal(cache.containerId, p.sandboxId);
    assert.equal(cache.ifName, 'eth0');
    assert.equal(cache.networkName, 'crisp');
    assert.equal(Buffer.from(String(cache.config), 'base64').toString('utf8'), text);
    assert.deepEqual(cache.cniArgs, [
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', 'default'],
      ['K8S_POD_NAME', p.name],
      ['K8S_POD_INFRA_CONTAINER_ID', p.sandboxId],
      ['K8S_POD_UID', p.uid],
    ]);
    assert.deepEqual(cache.capabilityArgs, {
      portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp', hostIP: '' }],
    });
    assert.deepEqual(cache.result, result);

    const cached = await m.cached(p.sandboxId);
    assert.equal(cached?.networkName, 'crisp');
    assert.equal(cached.ifName, 'eth0');
    assert.deepEqual(cached.result, result);
    assert.deepEqual(
      cached.ips.map((i) => i.ip),
      ['10.85.0.5', 'fd00::5'],
    );
    // A second manager (a restart) sees the same.
    assert.deepEqual(await manager(f).cached(p.sandboxId), cached);
    assert.deepEqual(await m.cachedSandboxIds(), [p.sandboxId]);
    assert.equal(await m.cached('nope'), undefined);
    await assert.rejects(m.add(p), AlreadyExistsError, 'a second ADD of the same sandbox is refused');
  });

  it('on a plugin failure runs DEL for what was done, writes no cache, and names plugin, code and msg', async () => {
    const f = await fixture();
    const r1 = { cniVersion: '1.0.0', ips: [{ address: '10.1.0.2/24' }] };
    await fakePlugin(f, 'fake-a', { result: r1 });
    await fakePlugin(f, 'fake-b', { fail: { on: 'ADD', code: 999, msg: 'boom', details: 'it broke' } });
    await fakePlugin(f, 'fake-c');
    await writeConf(
      f,
      '10-n.conflist',
      list('crisp', [{ type: 'fake-a' }, { type: 'fake-b' }, { type: 'fake-c' }]),
    );
    const m = manager(f);
    const p = pod();
    await assert.rejects(m.add(p), (err) => {
      assert.ok(err instanceof UnavailableError, String(err));
      assert.equal(
        err.message,
        `CNI plugin "fake-b" failed to ADD pod sandbox ${p.sandboxId} to network "crisp": code 999: boom (it broke)`,
      );
      assert.equal(err.details.cniCode, 999);
      return true;
    });
    const cs = await calls(f);
    assert.deepEqual(summary(cs), ['fake-a ADD', 'fake-b ADD', 'fake-b DEL', 'fake-a DEL']);
    assert.deepEqual(cs[2]?.stdin.prevResult, r1, 'the rollback DEL gets the last result');
    assert.equal(await m.cached(p.sandboxId), undefined);
    assert.deepEqual(await readdir(f.cacheDir).catch(() => []), []);

    // A configuration error code maps to FailedPrecondition.
    await fakePlugin(f, 'fake-b', { fail: { on: 'ADD', code: 1, msg: 'incompatible CNI versions' } });
    await assert.rejects(
      m.add(pod()),
      (err) =>
        err instanceof FailedPreconditionError && /code 1: incompatible CNI versions$/.test(err.message),
    );
    // Empty stdout: stderr says what went wrong.
    await fakePlugin(f, 'fake-b', { stderrFail: { on: 'ADD', text: 'panic: nil pointer' } });
    await assert.rejects(
      m.add(pod()),
      (err) =>
        err instanceof UnavailableError &&
        /"fake-b" failed to ADD .*: exit code 2: panic: nil pointer$/.test(err.message),
    );
  });

  it('the DEL after a failed ADD goes on past a failing DEL', async () => {
    const f = await fixture();
    await fakePlugin(f, 'fake-a');
    await fakePlugin(f, 'fake-b', { fail: { on: 'DEL', code: 999, msg: 'cannot' } });
    await fakePlugin(f, 'fake-c', { fail: { on: 'ADD', code: 7, msg: 'bad config' } });
    await writeConf(
      f,
      '10-n.conflist',
      list('crisp', [{ type: 'fake-a' }, { type: 'fake-b' }, { type: 'fake-c' }]),
    );
    await assert.rejects(
      manager(f).add(pod()),
      (err) =>
        err instanceof FailedPreconditionError &&
        /"fake-c" failed to ADD .*code 7: bad config$/.test(err.message),
    );
    assert.deepEqual(summary(await calls(f)), [
      'fake-a ADD',
      'fake-b ADD',
      'fake-c ADD',
      'fake-c DEL',
      'fake-b DEL',
      'fake-a DEL',
    ]);
  });

  it('a hanging plugin hits the timeout: DeadlineExceededError naming plugin and limit', async () => {
    const f = await fixture();
    await fakePlugin(f, 'fake-a');
    await fakePlugin(f, 'fake-slow', { hang: 'ADD' });
    await writeConf(f, '10-n.conflist', list('crisp', [{ type: 'fake-a' }, { type: 'fake-slow' }]));
    const observed: string[] = [];
    const m = manager(f, { timeoutMs: 500, observe: (op, type) => observed.push(`${op} ${type}`) });
    const started = Date.now();
    await assert.rejects(m.add(pod()), (err) => {
      assert.ok(err instanceof DeadlineExceededError, String(err));
      assert.match(
        err.message,
        /CNI plugin "fake-slow" did not finish ADD of pod sandbox \S+ to network "crisp" within 500 ms/,
      );
      return true;
    });
    assert.ok(Date.now() - started < 5_000);
    assert.deepEqual(summary(await calls(f)), ['fake-a ADD', 'fake-slow ADD', 'fake-slow DEL', 'fake-a DEL']);
    assert.deepEqual(observed, ['ADD fake-a', 'ADD fake-slow', 'DEL fake-slow', 'DEL fake-a']);
  });

  it('is cancelled by its AbortSignal', async () => {
    const f = await fixture();
    await fakePlugin(f, 'fake-slow', { hang: 'ADD' });
    await writeConf(f, '10-n.conflist', list('crisp', [{ type: 'fake-slow' }]));
    const ac = new AbortController();
    setTimeout(() => {
      ac.abort();
    }, 200);
    await assert.rejects(manager(f).add(pod(), ac.signal), CanceledError);
    assert.deepEqual(summary(await calls(f)), ['fake-slow ADD', 'fake-slow DEL']);
  });

  it('retries a plugin binary that is busy being written ("text file busy")', async () => {
    const f = await fixture();
    const bin = await fakePlugin(f, 'fake-a', { result: bridgeLikeResult('/ns') });
    await writeConf(f, '10-n.conflist', list('crisp', [{ type: 'fake-a' }]));
    const handle = await open(bin, 'r+');
    const released = sleep(300).then(() => handle.close());
    try {
      const att = await manager(f).add(pod());
      assert.equal(att.ips[0]?.ip, '10.85.0.5');
    } finally {
      await released;
    }
    assert.deepEqual(summary(await calls(f)), ['fake-a ADD']);
  });

  it('rejects invalid sandbox ids and a missing netns before running anything', async () => {
    const f = await fixture();
    await fakePlugin(f, 'fake-a');
    await writeConf(f, '10-n.conflist', list('crisp', [{ type: 'fake-a' }]));
    const m = manager(f);
    for (const sandboxId of ['', '-x', 'a/b', 'a b', '../x']) {
      await assert.rejects(m.add(pod({ sandboxId })), InvalidArgumentError);
      await assert.rejects(m.del(pod({ sandboxId })), InvalidArgumentError);
    }
    await assert.rejects(m.add(pod({ netnsPath: '' })), InvalidArgumentError);
    await assert.rejects(m.add(pod({ name: 'a;b=c' })), InvalidArgumentError);
    assert.deepEqual(await calls(f), []);
  });

  it('serializes operations on one sandbox', async () => {
    const f = await fixture();
    await fakePlugin(f, 'fake-a', { sleep: { on: 'ADD', seconds: 0.3 } });
    await fakePlugin(f, 'fake-b');
    await writeConf(f, '10-n.conflist', list('crisp', [{ type: 'fake-a' }, { type: 'fake-b' }]));
    const m = manager(f);
    const p = pod();
    const [added, second] = await Promise.allSettled([m.add(p), m.add(p), m.del(p)]);
    assert.equal(added.status, 'fulfilled');
    assert.equal(second.status, 'rejected');
    assert.ok(second.reason instanceof AlreadyExistsError);
    assert.deepEqual(summary(await calls(f)), ['fake-a ADD', 'fake-b ADD', 'fake-b DEL', 'fake-a DEL']);
    assert.equal(await m.cached(p.sandboxId), undefined);
  });
});

// --- DEL and CHECK ------------------------------------------------------------------------------------------

describe('CniManager.del and check', () => {
  it('DEL uses the cache after the conflist is gone: reverse order, cached args and prevResult; then idempotent', async () => {
    const f = await fixture();
    const result = bridgeLikeResult('/ns');
    await fakePlugin(f, 'fake-a');
    await fakePlugin(f, 'fake-b', { result });
    await fakePlugin(f, 'fake-other');
    const conf = await writeConf(
      f,
      '10-n.conflist',
      list('crisp', [{ type: 'fake-a', capabilities: { portMappings: true } }, { type: 'fake-b' }]),
    );
    const p = pod({ portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'tcp', hostIP: '' }] });
    await manager(f).add(p);
    await rm(conf);
    await clearCalls(f);

    // A restart: a new manager; the pod name given to DEL differs, the cache's args win.
    const m = manager(f);
    assert.deepEqual(await m.cachedSandboxIds(), [p.sandboxId]);
    await m.del({ ...p, name: 'other-name', netnsPath: '' });
    const cs = await calls(f);
    assert.deepEqual(summary(cs), ['fake-b DEL', 'fake-a DEL']);
    for (const c of cs) {
      assert.equal(c.env.CNI_COMMAND, 'DEL');
      assert.equal(c.env.CNI_NETNS, '');
      assert.equal(c.env.CNI_IFNAME, 'eth0');
      assert.match(c.env.CNI_ARGS ?? '', new RegExp(`K8S_POD_NAME=${p.name}(;|$)`));
      assert.deepEqual(c.stdin.prevResult, result);
      assert.equal(c.stdin.name, 'crisp');
    }
    assert.deepEqual(cs[1]?.stdin.runtimeConfig, {
      portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'tcp', hostIP: '' }],
    });
    assert.equal(await m.cached(p.sandboxId), undefined);
    assert.deepEqual(await readdir(f.cacheDir), []);
    assert.deepEqual(await m.cachedSandboxIds(), []);

    // Again, with no cache and no config: nothing to do.
    await clearCalls(f);
    await m.del(p);
    assert.deepEqual(await calls(f), []);

    // No cache but a (new) config: DEL through it, without prevResult.
    await writeConf(f, '20-new.conflist', list('newnet', [{ type: 'fake-other' }, { type: 'fake-a' }]));
    await m.del(p);
    await m.del(p);
    const again = await calls(f);
    assert.deepEqual(summary(again), ['fake-a DEL', 'fake-other DEL', 'fake-a DEL', 'fake-other DEL']);
    for (const c of again) {
      assert.equal('prevResult' in c.stdin, false);
      assert.equal(c.stdin.name, 'newnet');
      assert.equal(c.env.CNI_NETNS, p.netnsPath);
    }
  });

  it('DEL before 0.4.0 sends no prevResult; a failing DEL keeps the cache and throws the typed error', async () => {
    const f = await fixture();
    await fakePlugin(f, 'fake-a', { result: { cniVersion: '0.3.1', ips: [] } });
    await writeConf(f, '10-n.conflist', list('old', [{ type: 'fake-a' }], '0.3.1'));
    const m = manager(f);
    const p = pod();
    await m.add(p);
    await clearCalls(f);
    await fakePlugin(f, 'fake-a', { fail: { on: 'DEL', code: 11, msg: 'try again later' } });
    await assert.rejects(m.del(p), (err) => {
      assert.ok(err instanceof UnavailableError);
      assert.equal(
        err.message,
        `CNI plugin "fake-a" failed to DEL pod sandbox ${p.sandboxId} from network "old": code 11: try again later`,
      );
      return true;
    });
    assert.notEqual(await m.cached(p.sandboxId), undefined, 'the cache stays for a retry');
    await fakePlugin(f, 'fake-a');
    await m.del(p);
    const cs = await calls(f);
    assert.deepEqual(summary(cs), ['fake-a DEL', 'fake-a DEL']);
    for (const c of cs) assert.equal('prevResult' in c.stdin, false);
    assert.equal(await m.cached(p.sandboxId), undefined);
  });

  it('DEL with an unreadable cache file uses the current config and then removes the file', async () => {
    const f = await fixture();
    await fakePlugin(f, 'fake-a');
    await writeConf(f, '10-n.conflist', list('crisp', [{ type: 'fake-a' }]));
    const m = manager(f);
    const p = pod();
    await mkdir(f.cacheDir, { recursive: true });
    const bad = join(f.cacheDir, `crisp-${p.sandboxId}-eth0`);
    await writeFile(bad, '{"kind":"cniCacheV1", truncated');
    // Another sandbox whose id ends like this one's is not touched.
    const other = join(f.cacheDir, `crisp-x-${p.sandboxId}-eth0`);
    await writeFile(other, 'garbage');
    assert.equal(await m.cached(p.sandboxId), undefined);
    assert.deepEqual(await m.cachedSandboxIds(), []);
    await m.del(p);
    assert.deepEqual(summary(await calls(f)), ['fake-a DEL']);
    assert.deepEqual(await readdir(f.cacheDir), [`crisp-x-${p.sandboxId}-eth0`]);
  });

  it('CHECK runs in order with the cached result; skipped below 0.4.0 or with disableCheck', async () => {
    const f = await fixture();
    const result = bridgeLikeResult('/ns');
    await fakePlugin(f, 'fake-a');
    await fakePlugin(f, 'fake-b', { result });
    const conf = await writeConf(f, '10-n.conflist', list('crisp', [{ type: 'fake-a' }, { type: 'fake-b' }]));
    const m = manager(f);
    const p = pod();
    await assert.rejects(m.check(p), NotFoundError);
    await m.add(p);
    await rm(conf);
    await clearCalls(f);
    await m.check(p);
    const cs = await calls(f);
    assert.deepEqual(summary(cs), ['fake-a CHECK', 'fake-b CHECK']);
    for (const c of cs) assert.deepEqual(c.stdin.prevResult, result);

    await fakePlugin(f, 'fake-b', { fail: { on: 'CHECK', code: 999, msg: 'eth0 missing' } });
    await assert.rejects(
      m.check(p),
      (err) =>
        err instanceof UnavailableError &&
        /"fake-b" failed to CHECK pod sandbox \S+ in network "crisp": code 999: eth0 missing/.test(
          err.message,
        ),
    );
    await m.del(p);

    for (const [version, extra] of [
      ['0.3.1', {}],
      ['1.0.0', { disableCheck: true }],
    ] as const) {
      await writeConf(f, '10-n.conflist', list('crisp', [{ type: 'fake-a' }], version, extra));
      const q = pod();
      await m.add(q);
      await clearCalls(f);
      await m.check(q);
      assert.deepEqual(await calls(f), [], `no CHECK for ${version} ${JSON.stringify(extra)}`);
    }
  });
});

// --- the real plugins -----------------------------------------------------------------------------------

const REAL_BIN = '/usr/lib/cni';
const haveReal = await Promise.all(
  ['loopback', 'bridge', 'host-local'].map((p) => access(join(REAL_BIN, p))),
).then(
  () => true,
  () => false,
);
const realSkip = process.getuid?.() !== 0 ? 'needs root' : !haveReal ? `no plugins in ${REAL_BIN}` : false;

describe('with the real plugins (loopback, bridge, host-local)', { skip: realSkip }, () => {
  const hex = randomBytes(2).toString('hex');
  const bridge = `crispt${hex}`;
  let root = '';
  let nsDir = '';
  let nsFile = '';

  const run = (file: string, args: string[]): Promise<string> =>
    runCommand(file, args, { timeoutMs: 20_000 }).then((r) => r.stdout);
  const linkExists = (name: string): Promise<boolean> =>
    run('ip', ['link', 'show', 'dev', name]).then(
      () => true,
      () => false,
    );
  const mountedUnder = async (dir: string): Promise<string[]> =>
    (await readFile('/proc/self/mountinfo', 'utf8'))
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((mp) => dir !== '' && (mp === dir || mp.startsWith(`${dir}/`)));

  after(async () => {
    for (let n = 0; n < 8 && (await mountedUnder(nsDir)).length > 0; n++) {
      const deepest = (await mountedUnder(nsDir)).sort((a, b) => b.length - a.length)[0] ?? nsDir;
      await run('umount', ['-l', deepest]).catch(() => undefined);
    }
    if (await linkExists(bridge)) await run('ip', ['link', 'del', bridge]);
    if (root !== '') await rm(root, { recursive: true, force: true });
    assert.deepEqual(await mountedUnder(nsDir), [], 'no mounts left');
    assert.equal(await linkExists(bridge), false, 'no bridge left');
  });

  it('ADD gives the netns lo up and an eth0 address on the bridge; DEL removes veth and lease', async () => {
    root = await realpath(await mkdtemp(join(tmpdir(), 'crispt-')));
    nsDir = join(root, 'netns');
    await mkdir(nsDir);
    await run('mount', ['--bind', nsDir, nsDir]);
    await run('mount', ['--make-private', nsDir]);
    nsFile = join(nsDir, 'pod');
    await writeFile(nsFile, '');
    await run('unshare', [`--net=${nsFile}`, 'true']);
    const inNs = (args: string[]): Promise<string> => run('nsenter', [`--net=${nsFile}`, ...args]);
    assert.doesNotMatch(await inNs(['ip', '-o', 'link', 'show', 'lo']), /[<,]UP[,>]/, 'lo starts down');

    const loDir = join(root, 'lo.d');
    const netDir = join(root, 'net.d');
    const dataDir = join(root, 'ipam');
    const cacheDir = join(root, 'results');
    await mkdir(loDir);
    await mkdir(netDir);
    await writeFile(
      join(loDir, '99-loopback.conflist'),
      JSON.stringify(list('cni-loopback', [{ type: 'loopback' }])),
    );
    const netName = `crispt-${hex}`;
    await writeFile(
      join(netDir, '10-crispt.conflist'),
      JSON.stringify(
        list(netName, [
          {
            type: 'bridge',
            bridge,
            isGateway: false,
            ipMasq: false,
            ipam: { type: 'host-local', ranges: [[{ subnet: '10.85.250.0/24' }]], dataDir },
          },
        ]),
        null,
        2,
      ),
    );
    const lo = new CniManager({ confDir: loDir, binDirs: [REAL_BIN], cacheDir, log, ifName: 'lo' });
    const net = new CniManager({ confDir: netDir, binDirs: ['/nonexistent', REAL_BIN], cacheDir, log });
    assert.equal((await net.status()).ready, true);
    const p = pod({ netnsPath: nsFile });

    const loAtt = await lo.add(p);
    assert.deepEqual(
      loAtt.ips.map((i) => i.address),
      ['127.0.0.1/8', '::1/128'],
    );
    assert.match(await inNs(['ip', '-o', 'link', 'show', 'lo']), /[<,]UP[,>]/);

    const att = await net.add(p);
    const v4 = att.ips[0];
    assert.ok(v4, 'an address');
    assert.equal(v4.family, 4);
    assert.match(v4.address, /^10\.85\.250\.\d+\/24$/);
    assert.match(
      await inNs(['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']),
      new RegExp(` ${v4.address.replaceAll('.', '\\.')} `),
    );
    const lease = join(dataDir, netName, v4.ip);
    await access(lease);
    const result = att.result as { interfaces?: { name: string; sandbox?: string }[] };
    const veth = result.interfaces?.find((i) => !i.sandbox && i.name !== bridge)?.name;
    assert.ok(veth, JSON.stringify(att.result));
    assert.match(await run('ip', ['-o', 'link', 'show', 'dev', veth]), new RegExp(`master ${bridge}`));
    assert.deepEqual(await net.cachedSandboxIds(), [p.sandboxId]);
    assert.deepEqual(await lo.cachedSandboxIds(), [p.sandboxId]);

    await net.check(p);

    await net.del(p);
    assert.equal(await linkExists(veth), false, 'the host veth is gone');
    await assert.rejects(access(lease), 'the lease is released');
    await assert.rejects(inNs(['ip', 'link', 'show', 'dev', 'eth0']));
    assert.equal(await net.cached(p.sandboxId), undefined);
    await net.del(p); // idempotent, through the current config
    await lo.del(p);
    assert.deepEqual(await readdir(cacheDir), []);
  });
});
