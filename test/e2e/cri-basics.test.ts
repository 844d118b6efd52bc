/**
 * The CRI surface of a real crisp daemon: Version, Status, RuntimeConfig, the RPCs that are
 * not implemented yet, bad input, unknown methods and clients that go away mid-call.
 */
import assert from 'node:assert/strict';
import { stat, writeFile, mkdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode, Metadata, type ServiceError } from '@grpc/grpc-js';
import { connectCri, rejection, type CriClients } from './harness/cri-client.js';
import { removeTestDirs, startCrisp, type RunningCrisp } from './harness/daemon.js';

describe('CRI basics against the real daemon', () => {
  let crisp: RunningCrisp;
  let cri: CriClients;

  before(async () => {
    crisp = await startCrisp(undefined, { network: false });
    cri = await connectCri(crisp.dirs.socket);
  });

  after(async () => {
    cri.close();
    const exit = await crisp.stop();
    await removeTestDirs(crisp.dirs);
    assert.equal(exit.code, 0, `crisp exited with ${exit.code}:\n${exit.stderr}`);
  });

  it('creates the socket with mode 0660', async () => {
    const st = await stat(crisp.dirs.socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o660);
  });

  it('answers Version', async () => {
    const res = await cri.runtime.Version({ version: 'v1' });
    assert.equal(res.runtime_name, 'crisp');
    assert.equal(res.runtime_api_version, 'v1');
    assert.equal(res.version, '0.1.0');
    assert.match(res.runtime_version, /^\d+\.\d+\.\d+/);
  });

  it('answers Status with both conditions, handlers and verbose info', async () => {
    const res = await cri.runtime.Status({ verbose: true });
    const conditions = res.status?.conditions ?? [];
    const runtimeReady = conditions.find((c) => c.type === 'RuntimeReady');
    const networkReady = conditions.find((c) => c.type === 'NetworkReady');
    assert.ok(runtimeReady, 'RuntimeReady condition present');
    assert.equal(runtimeReady.status, true, `runtime not ready: ${runtimeReady.message}`);
    assert.ok(networkReady, 'NetworkReady condition present');
    // The test's CNI config dir is empty: not ready, and the message names the directory.
    assert.equal(networkReady.status, false);
    assert.equal(networkReady.reason, 'NetworkPluginNotReady');
    assert.ok(networkReady.message.includes(crisp.dirs.cniConfDir), networkReady.message);

    assert.deepEqual(
      res.runtime_handlers.map((h) => h.name),
      ['', 'runc'],
    );
    const configJson = res.info.config;
    assert.ok(configJson, 'verbose info has the config');
    const config = JSON.parse(configJson) as { listen: string; root_dir: string };
    assert.equal(config.listen, crisp.dirs.socket);
    assert.equal(config.root_dir, crisp.dirs.root);

    const quiet = await cri.runtime.Status({ verbose: false });
    assert.deepEqual(quiet.info, {});
  });

  it('turns NetworkReady true when a CNI config appears', async () => {
    await mkdir(crisp.dirs.cniConfDir, { recursive: true });
    await writeFile(
      `${crisp.dirs.cniConfDir}/10-test.conflist`,
      JSON.stringify({ cniVersion: '1.0.0', name: 'test', plugins: [{ type: 'loopback' }] }),
    );
    const res = await cri.runtime.Status({});
    const networkReady = res.status?.conditions.find((c) => c.type === 'NetworkReady');
    assert.equal(networkReady?.status, true);
  });

  it('answers RuntimeConfig with the cgroup driver', async () => {
    const res = await cri.runtime.RuntimeConfig({});
    assert.equal(res.linux?.cgroup_driver, 'CGROUPFS');
  });

  it('answers UNIMPLEMENTED for RPCs that have not landed, naming the RPC', async () => {
    const err = await rejection(cri.runtime.CheckpointContainer({ container_id: 'abc' }));
    assert.equal(err.code, GrpcCode.UNIMPLEMENTED);
    assert.match(err.details, /RuntimeService\/CheckpointContainer is not implemented by crisp/);
  });

  it('answers a server-streaming RPC with nothing to report with one empty message', async () => {
    const stream = cri.raw.runtime.StreamPodSandboxMetrics({});
    const got = await new Promise<unknown[]>((resolve, reject) => {
      const messages: unknown[] = [];
      stream.on('data', (m: { pod_sandbox_metrics: unknown[] }) => messages.push(m.pod_sandbox_metrics));
      stream.on('error', reject);
      stream.on('end', () => {
        resolve(messages);
      });
    });
    assert.deepEqual(got, [[]], 'no pods: one message, empty');
  });

  it('answers INVALID_ARGUMENT naming the missing field', async () => {
    const cases: [Promise<ServiceError>, string][] = [
      [rejection(cri.runtime.PodSandboxStatus({ pod_sandbox_id: '' })), 'pod_sandbox_id'],
      [rejection(cri.runtime.StopContainer({})), 'container_id'],
      [rejection(cri.runtime.RunPodSandbox({})), 'config'],
      [rejection(cri.runtime.RunPodSandbox({ config: { metadata: {} } })), 'config.metadata.name'],
      [rejection(cri.runtime.ExecSync({ container_id: 'abc', cmd: [] })), 'cmd'],
      [rejection(cri.runtime.Exec({ container_id: '', cmd: ['true'], stdout: true })), 'container_id'],
      [rejection(cri.runtime.PortForward({ pod_sandbox_id: '' })), 'pod_sandbox_id'],
      [rejection(cri.image.PullImage({})), 'image'],
      [rejection(cri.image.ImageStatus({ image: { image: '' } })), 'image.image'],
    ];
    for (const [pending, field] of cases) {
      const err = await pending;
      assert.equal(err.code, GrpcCode.INVALID_ARGUMENT, `${field}: ${err.details}`);
      assert.ok(err.details.startsWith(`invalid ${field}:`), err.details);
      assert.ok(!err.details.includes('    at '), 'no stack trace in the message');
    }
  });

  it('answers UNIMPLEMENTED for a method no service has', async () => {
    const err = await new Promise<ServiceError>((resolve, reject) => {
      cri.raw.runtime.makeUnaryRequest(
        '/runtime.v1.RuntimeService/NoSuchMethod',
        (x: Buffer) => x,
        (x: Buffer) => x,
        Buffer.alloc(0),
        new Metadata(),
        {},
        (e) => {
          if (e) resolve(e);
          else reject(new Error('unknown method succeeded'));
        },
      );
    });
    assert.equal(err.code, GrpcCode.UNIMPLEMENTED);
  });

  it('survives clients that disconnect mid-call', async () => {
    for (let i = 0; i < 20; i++) {
      const c = await connectCri(crisp.dirs.socket);
      const unaryCall = c.raw.runtime.Status({ verbose: true }, () => undefined);
      const streamCall = c.raw.runtime.GetContainerEvents({});
      streamCall.on('error', () => undefined);
      if (i % 2 === 0) {
        unaryCall.cancel();
        streamCall.cancel();
      }
      c.close();
    }
    const res = await cri.runtime.Version({});
    assert.equal(res.runtime_name, 'crisp');
    assert.equal(crisp.child.exitCode, null, 'daemon still running');
  });

  it('logs every RPC at debug with method and duration', async () => {
    await cri.runtime.Version({});
    const line = crisp.logs.find((l) => l.msg === 'rpc ok' && l.rpc === 'Version');
    assert.ok(line, 'a debug line for Version');
    assert.equal(typeof line.durationMs, 'number');
    const failed = crisp.logs.find((l) => l.msg === 'rpc failed' && l.rpc === 'PodSandboxStatus');
    assert.ok(failed, 'a warn line for the failed PodSandboxStatus');
    assert.equal(failed.code, 'INVALID_ARGUMENT');
    assert.equal(failed.level, 40);
  });
});
